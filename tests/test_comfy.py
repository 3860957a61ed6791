"""The ComfyUI nodes, called as ComfyUI calls them: class instances whose FUNCTION gets the inputs by name,
inside `torch.inference_mode()` (ComfyUI's executor runs every node in it), with IMAGE float (B, H, W, C) and
MASK float (B, H, W) in [0, 1]. ComfyUI is no dependency (it is not published on the package registries
here), so its loader and executor are followed by hand, and its core nodes are stood in for by what they
return."""

import inspect
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from anisora.cli import main
from anisora.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, comfy_progress
from anisora.errors import InputError
from anisora.media import load_image, psnr, read_frames, save_image
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components
from anisora.toonworld.held_out import held_out_shots

NODE_FOLDER = Path(__file__).resolve().parents[1] / "comfyui"
WORKFLOW = NODE_FOLDER / "example_workflow_api.json"
OURS = {"AnisoraLoadModel", "AnisoraGuide", "AnisoraSample"}
# The ComfyUI core nodes the example workflow uses, as ComfyUI's nodes.py and comfy_extras/nodes_images.py
# declare them: inputs (a file choice is any name) and return types.
CORE_NODES = {
    "LoadImage": ({"image": ("FILE",)}, ("IMAGE", "MASK")),
    "LoadImageMask": ({"image": ("FILE",), "channel": (["alpha", "red", "green", "blue"],)}, ("MASK",)),
    "SaveAnimatedWEBP": (
        {
            "images": ("IMAGE",),
            "filename_prefix": ("STRING",),
            "fps": ("FLOAT", {"min": 0.01, "max": 1000.0}),
            "lossless": ("BOOLEAN",),
            "quality": ("INT", {"min": 0, "max": 100}),
            "method": (["default", "fastest", "slowest"],),
        },
        (),
    ),
}


def run_node(name: str, **inputs):
    """One node run as ComfyUI's executor runs it."""
    cls = NODE_CLASS_MAPPINGS[name]
    with torch.inference_mode():
        return getattr(cls(), cls.FUNCTION)(**inputs)


def comfy_image(path) -> torch.Tensor:
    """What ComfyUI's LoadImage gives for an opaque RGB file: (1, H, W, 3) float in [0, 1]."""
    return torch.from_numpy(load_image(path)).float()[None] / 255


def comfy_mask(path) -> torch.Tensor:
    """What ComfyUI's LoadImageMask gives with channel "red": (1, H, W) float in [0, 1]."""
    return torch.from_numpy(load_image(path)[..., 0]).float()[None] / 255


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("comfy")
    AnisoraPipeline(**build_components("tiny", "anisora")).save_pretrained(root / "model")
    rng = np.random.default_rng(0)
    for name in ("first", "last"):
        save_image(root / f"{name}.png", (rng.random((48, 80, 3)) * 255).astype(np.uint8))
    mask = np.zeros((48, 80, 3), np.uint8)
    mask[:, 40:] = 255
    save_image(root / "mask.png", mask)
    return root


@pytest.fixture(scope="module")
def tiny_model(tiny):
    (pipe,) = run_node("AnisoraLoadModel", model=str(tiny / "model"), dtype="float32")
    return pipe


def sample(model, guides=(), **inputs):
    values = dict(
        prompt="", motion=-1.0, num_frames=9, width=64, height=48, fps=0, steps=2, guidance=-1.0, seed=0
    )
    return run_node("AnisoraSample", model=model, guides=guides, **(values | inputs))


def test_the_node_folder_loads_as_comfyui_loads_a_custom_node(tmp_path):
    """ComfyUI execs custom_nodes/NAME/__init__.py under a module name of its own; neither ComfyUI nor torch
    is needed to register the nodes (run apart, so that this process's imports do not count)."""
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("custom_nodes_x_anisora", {str(NODE_FOLDER / "__init__.py")!r})
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
print(sorted(module.NODE_CLASS_MAPPINGS), sorted(module.NODE_DISPLAY_NAME_MAPPINGS))
print("torch" in sys.modules, "comfy" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == [f"{sorted(OURS)} {sorted(OURS)}", "False False"]


def test_the_nodes_follow_comfyui_conventions():
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS) == OURS
    for cls in NODE_CLASS_MAPPINGS.values():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional"} and "required" in spec
        for name, entry in {**spec["required"], **spec.get("optional", {})}.items():
            assert isinstance(entry, tuple) and 1 <= len(entry) <= 2, name
            assert isinstance(entry[0], (str, list)), name
        assert isinstance(cls.RETURN_TYPES, tuple) and len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
        assert isinstance(cls.CATEGORY, str)
        parameters = dict(inspect.signature(getattr(cls, cls.FUNCTION)).parameters)
        parameters.pop("self")
        assert set(parameters) == set(spec["required"]) | set(spec.get("optional", {}))
        for name, parameter in parameters.items():
            assert (parameter.default is inspect.Parameter.empty) == (name in spec["required"]), name


def test_sample_gives_the_frames_anisora_generate_gives(tiny, tiny_model, tmp_path):
    """The strongest check of the translation: the same request through the nodes and through the CLI gives
    bit-identical frames (guides at 0, at 4 with strength 0.8 and at -1, a motion mask, a motion score, and
    guide fitting of the last frame, whose gradient steps must work inside ComfyUI's inference mode)."""
    guides = ()
    for name, frame_index, strength in (("first", 0, 1.0), ("last", 4, 0.8), ("first", -1, 1.0)):
        image = comfy_image(tiny / f"{name}.png")
        (guides,) = run_node(
            "AnisoraGuide", image=image, frame_index=frame_index, strength=strength, guides=guides
        )
    settings = dict(prompt="a cat", motion=1.3, num_frames=9, fps=8, seed=5, guide_fit_steps=2)
    frames, fps = sample(tiny_model, guides, mask=comfy_mask(tiny / "mask.png"), **settings)
    assert frames.shape == (9, 48, 64, 3) and frames.dtype == torch.float32
    assert frames.min() >= 0 and frames.max() <= 1 and frames.std() > 0
    assert isinstance(fps, float) and fps == 8.0

    out = tmp_path / "cli.mp4"
    args = ["generate", "--model", str(tiny / "model"), "--image", str(tiny / "first.png")]
    args += [
        f"--guide=4@0.8:{tiny / 'last.png'}",
        f"--guide=-1:{tiny / 'first.png'}",
        "--mask",
        str(tiny / "mask.png"),
        "--motion",
        "1.3",
    ]
    args += ["--prompt", "a cat", "--frames", "9", "--size", "64x48", "--fps", "8", "--steps", "2"]
    args += ["--seed", "5", "--guide-fit-steps", "2", "--lossless", "--out", str(out)]
    assert main(args) == 0
    expected = read_frames(out, range(9))
    assert np.array_equal((frames * 255).round().to(torch.uint8).numpy(), expected)


def test_a_full_strength_guide_comes_back_at_its_frame():
    """The shipped demo model (the default of an empty model name) on a held-out ToonWorld frame: frame 0
    comes back far closer than its VAE's round trip could (27.7 dB on held-out frames), since the model
    draws on its guide's pixels and decodes only the change it makes (about 40 dB here)."""
    shot = held_out_shots(1, 17, 8.0, 160, 96, still_camera=True)[-1]
    (model,) = run_node("AnisoraLoadModel", model="", dtype="float32")
    (guides,) = run_node(
        "AnisoraGuide", image=torch.from_numpy(shot.frames[:1]) / 255, frame_index=0, strength=1
    )
    frames, fps = sample(model, guides, prompt=shot.caption, num_frames=0, width=0, height=0, steps=1)
    frames = (frames * 255).round().to(torch.uint8).numpy()
    assert frames.shape == (17, 96, 160, 3) and fps == 8.0
    assert psnr(frames[0], shot.frames[0]) > 33


@pytest.mark.parametrize(
    ("guide_image", "frame_index", "mask", "message"),
    [
        ((1, 48, 80, 3), 9, None, "guide frame 9 is outside the video: frames are 0-8"),
        ((1, 48, 80, 3), -10, None, "guide frame -10 is outside the video"),
        ((1, 48, 80, 3), 0, (1, 30, 30), "motion mask is 30x30 but the first guide image is 80x48"),
        ((2, 48, 80, 3), 0, None, "IMAGE (B, H, W, C) holding one picture, got shape (2, 48, 80, 3)"),
        ((1, 48, 80, 2), 0, None, "an IMAGE has 1, 3 or 4 channels, got 2"),
        ((1, 48, 80, 3), 0, (3, 48, 80), "MASK (B, H, W) holding one picture, got shape (3, 48, 80)"),
    ],
)
def test_bad_input_is_one_line_before_sampling(
    tiny_model, monkeypatch, guide_image, frame_index, mask, message
):
    def no_sampling(*args, **kwargs):
        raise AssertionError("the pipeline ran")

    monkeypatch.setattr(AnisoraPipeline, "__call__", no_sampling)
    with pytest.raises(InputError) as error:
        (guides,) = run_node(
            "AnisoraGuide", image=torch.rand(guide_image), frame_index=frame_index, strength=1
        )
        sample(tiny_model, guides, mask=None if mask is None else torch.ones(mask))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_progress_reaches_comfyuis_progress_bar(tiny_model, monkeypatch):
    updates = []

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            updates.append((value, total))

    monkeypatch.setitem(sys.modules, "comfy", types.ModuleType("comfy"))
    monkeypatch.setitem(sys.modules, "comfy.utils", types.SimpleNamespace(ProgressBar=ProgressBar))
    sample(tiny_model, steps=3)
    assert updates == [(1, 3), (2, 3), (3, 3)]
    monkeypatch.setitem(sys.modules, "comfy.utils", None)  # outside ComfyUI: no bar
    assert comfy_progress() is None


def node_spec(class_type: str) -> tuple[dict, set, tuple]:
    """A node's inputs (name -> ComfyUI input spec), required input names and return types."""
    if class_type in CORE_NODES:
        inputs, returns = CORE_NODES[class_type]
        return inputs, set(inputs), returns
    cls = NODE_CLASS_MAPPINGS[class_type]
    spec = cls.INPUT_TYPES()
    return {**spec["required"], **spec.get("optional", {})}, set(spec["required"]), cls.RETURN_TYPES


def allowed(kind, options: dict, value) -> bool:
    """Whether a widget of this kind and options (min, max) takes `value`."""
    if isinstance(kind, list):
        return value in kind
    if kind in ("FILE", "STRING", "BOOLEAN"):
        return isinstance(value, bool if kind == "BOOLEAN" else str)
    number = isinstance(value, int if kind == "INT" else (int, float)) and not isinstance(value, bool)
    return number and options.get("min", -np.inf) <= value <= options.get("max", np.inf)


def test_the_example_workflow_matches_the_nodes():
    """Every node is ours or ComfyUI core; every required input is given and no unknown one; each link
    points at an output of the type the input takes; each widget value is one the widget allows."""
    workflow = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    assert {node["class_type"] for node in workflow.values()} >= OURS
    for node_id, node in workflow.items():
        inputs, required, _ = node_spec(node["class_type"])
        assert required <= set(node["inputs"]) <= set(inputs), node_id
        for name, value in node["inputs"].items():
            kind, options = inputs[name][0], (inputs[name][1:] or ({},))[0]
            if isinstance(value, list):
                source, slot = value
                assert node_spec(workflow[source]["class_type"])[2][slot] == kind, (node_id, name)
            else:
                assert allowed(kind, options, value), (node_id, name, value)


def test_the_example_workflow_runs(tiny, tiny_model, tmp_path):
    """The example graph executed node by node in dependency order as ComfyUI does, its core nodes stood in
    for by what they do, on the tiny model with few steps: the clip and its rate reach the save node, which
    writes an animated WebP."""
    workflow = json.loads(WORKFLOW.read_text(encoding="utf-8"))
    workflow["1"]["inputs"]["model"] = str(tiny / "model")
    workflow["7"]["inputs"] |= {"steps": 2, "width": 64, "height": 48}
    saved = {}
    core = {
        "LoadImage": lambda image: (comfy_image(tiny / image), torch.zeros(1, 64, 64)),
        "LoadImageMask": lambda image, channel: (comfy_mask(tiny / image),),
        "SaveAnimatedWEBP": lambda images, fps, **widgets: save_webp(images, fps, tmp_path, saved),
    }
    outputs = {}

    def execute(node_id):
        if node_id not in outputs:
            node = workflow[node_id]
            inputs = {
                name: execute(value[0])[value[1]] if isinstance(value, list) else value
                for name, value in node["inputs"].items()
            }
            if node["class_type"] in core:
                outputs[node_id] = core[node["class_type"]](**inputs)
            else:
                outputs[node_id] = run_node(node["class_type"], **inputs)
        return outputs[node_id]

    execute("8")
    assert saved["images"].shape == (9, 48, 64, 3) and saved["fps"] == 8.0
    with Image.open(saved["path"]) as video:
        assert (video.n_frames, video.size) == (9, (64, 48))


def save_webp(images: torch.Tensor, fps: float, folder: Path, saved: dict) -> tuple:
    """What ComfyUI's SaveAnimatedWEBP does with its inputs: PIL's animated WebP at the given rate."""
    frames = [Image.fromarray((image.numpy() * 255).round().astype(np.uint8)) for image in images]
    path = folder / "anisora.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / fps), lossless=True)
    saved.update(images=images, fps=fps, path=path)
    return ()
