"""`anisora generate` end to end on a tiny random model directory: video, sidecar, preview, bad input."""

import json
import shutil

import numpy as np
import pytest

from anisora.cli import main
from anisora.media import probe, read_frames, save_image
from anisora.model import loading as loading_module
from anisora.model import weights
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate")
    AnisoraPipeline(**build_components("tiny", "anisora")).save_pretrained(root / "model")
    rng = np.random.default_rng(0)
    save_image(root / "first.png", (rng.random((48, 80, 3)) * 255).astype(np.uint8))
    save_image(root / "last.png", (rng.random((48, 80, 3)) * 255).astype(np.uint8))
    mask = np.zeros((48, 80, 3), np.uint8)
    mask[:, 40:] = 255
    save_image(root / "mask.png", mask)
    return root


def generate(root, out, *extra):
    args = ["generate", "--model", str(root / "model"), "--image", str(root / "first.png"), "--size", "64x48"]
    return main([*args, "--steps", "2", "--out", str(out), *extra])


def test_generate_writes_video_sidecar_and_preview(inputs, tmp_path, capsys):
    out = tmp_path / "shot.mp4"
    extra = ["--guide", f"last:{inputs / 'last.png'}", "--mask", str(inputs / "mask.png"), "--motion", "1.3"]
    extra += ["--seconds", "2", "--fps", "8", "--preview", "--prompt", "a cat"]
    assert generate(inputs, out, *extra) == 0
    info = probe(out)
    assert (info.frame_count, info.width, info.height, info.fps) == (17, 64, 48, 8)
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["resolved"]["guide_frames"] == [0, 16] and sidecar["resolved"]["layout"] == "anisora"
    # a model without presets gets the official aesthetic default, 5.5, and CogVideoX's DPM++ sampler
    assert sidecar["resolved"]["scheduler"] == "CogVideoXDPMScheduler"
    assert sidecar["prompt_used"] == "a cat. aesthetic score: 5.5. motion score: 1.3."
    assert sidecar["request"]["mask"].endswith("mask.png") and sidecar["request"]["steps"] == 2
    assert out.with_suffix(".preview.png").stat().st_size > 0
    assert "17 frames 64x48 at 8 fps" in capsys.readouterr().out


def test_the_sampler_asked_for_is_used(inputs, tmp_path):
    out = tmp_path / "ddim.mp4"
    assert generate(inputs, out, "--frames", "9", "--scheduler", "ddim") == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert (sidecar["load"]["scheduler"], sidecar["resolved"]["scheduler"]) == (
        "ddim",
        "CogVideoXDDIMScheduler",
    )


def test_keyframe_requests_take_the_models_keyframe_steps(inputs, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(inputs / "model", model)
    index = json.loads((model / "model_index.json").read_text())
    index["anisora_presets"] = {"steps": 2, "keyframe_steps": 1}
    (model / "model_index.json").write_text(json.dumps(index))
    args = ["generate", "--model", str(model), "--image", str(inputs / "first.png"), "--size", "64x48"]
    args += ["--frames", "9"]
    for extra, steps in (([], 2), (["--guide", f"last:{inputs / 'last.png'}"], 1)):
        out = tmp_path / f"{steps}.mp4"
        assert main([*args, *extra, "--out", str(out)]) == 0
        assert json.loads(out.with_suffix(".json").read_text())["resolved"]["steps"] == steps


def test_the_models_motion_guidance_serves_single_guide_requests(inputs, tmp_path):
    model = tmp_path / "model"
    AnisoraPipeline(**build_components("tiny", "anisora", motion_embedding=True)).save_pretrained(model)
    index = json.loads((model / "model_index.json").read_text())
    presets = {"motion_guidance": 2.0, "motion_guidance_reference": 9.5, "motion_guidance_until": 0.4}
    (model / "model_index.json").write_text(json.dumps({**index, "anisora_presets": presets}))
    args = ["generate", "--model", str(model), "--image", str(inputs / "first.png"), "--size", "64x48"]
    args += ["--frames", "9", "--steps", "2", "--motion", "20"]
    preset = {"scale": 2.0, "reference": 9.5, "until": 0.4}
    keyframe = ["--guide", f"last:{inputs / 'last.png'}"]
    for name, extra, expected in [
        ("preset", [], preset),
        ("keyframes", keyframe, None),
        ("asked", [*keyframe, "--motion-guidance", "1"], {**preset, "scale": 1.0}),
        ("off", ["--motion-guidance", "0"], None),
    ]:
        out = tmp_path / f"{name}.mp4"
        assert main([*args, *extra, "--out", str(out)]) == 0
        assert json.loads(out.with_suffix(".json").read_text())["resolved"]["motion_guidance"] == expected


def test_same_seed_same_video(inputs, tmp_path):
    # The samples are bit-identical (test_model). x264 does not always encode the same noisy frames to the
    # same bytes in a process that ran torch (seen with threads=1 too), so the files are compared loosely.
    a, b, c = (tmp_path / f"{n}.mp4" for n in "abc")
    for out, seed in ((a, "5"), (b, "5"), (c, "6")):
        assert generate(inputs, out, "--frames", "9", "--seed", seed) == 0
    fa, fb, fc = (read_frames(p, range(9)).astype(float) for p in (a, b, c))
    assert np.abs(fa - fb).mean() < 0.1 * np.abs(fa - fc).mean()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "10"], "not of the form 8k+1"),
        (["--seconds", "9"], "2-8 s"),
        (["--frames", "9", "--guide", "9:{root}/last.png"], "outside the video"),
        (["--frames", "9", "--guide", "3:{root}/last.png", "--guide", "2:{root}/last.png"], "share latent"),
        (["--frames", "9", "--guide", "4:{root}/missing.png"], "missing.png"),
        (["--frames", "9", "--mask", "{root}/model/model_index.json"], "model_index.json"),
        (["--frames", "9", "--size", "60x48"], "multiple of 16"),
        (["--frames", "9", "--motion", "nan"], "motion score must be a finite number"),
        (
            ["--frames", "9", "--motion-guidance", "2"],
            "motion guidance needs a model with a motion embedding",
        ),
        (["--frames", "9", "--motion-guidance", "-1"], "motion guidance must be >= 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(inputs, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setattr(loading_module, "load_pipeline", _must_not_load)
    out = tmp_path / "bad.mp4"
    assert generate(inputs, out, *(e.format(root=inputs) for e in extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("anisora: error:") and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "shown", "hidden"),
    [
        (
            [],
            ["2/2 [", "note: guide at frame 0"],
            ["Loading pipeline components", "Loading weights", "DEBUG"],
        ),
        (["-q"], [], ["2/2 [", "note:", "Loading"]),
        (["-v"], ["DEBUG anisora.model.loading: loading", "Loading pipeline components", "2/2 ["], []),
    ],
)
def test_quiet_and_verbose_choose_what_generate_says(inputs, tmp_path, capsys, flags, shown, hidden):
    """Default: the sampling bar and notes, no library loading bars; -q: nothing but the result; -v: debug
    lines and the loading bars too."""
    out = tmp_path / "shot.mp4"
    assert generate(inputs, out, "--frames", "9", *flags) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{out}  9 frames 64x48 at 8 fps") and captured.out.count("\n") == 1
    assert all(text in captured.err for text in shown), captured.err
    assert not any(text in captured.err for text in hidden), captured.err
    assert flags != ["-q"] or captured.err == ""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "9", "--guide", "12:{root}/last.png"], "outside the video"),
        (["--lora-scale", "nan"], "lora scale must be a finite number"),
        (["--seed", str(10**23)], "seed must be at most"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--device", "gpu7"], "unknown device"),
        (["--device", "cuda:3"], "device 'cuda:3'"),
        (["--fps", "0"], "fps must be an integer >= 1"),
        (["--guidance", "inf"], "guidance must be a finite number"),
        (["--lora", "{root}/no-such-lora"], "no-such-lora does not exist"),
        (["--layout", "v1"], "cannot convert"),
    ],
)
def test_bad_request_is_refused_before_the_model_loads(inputs, tmp_path, capsys, monkeypatch, extra, message):
    """Red-team findings: NaN LoRA scale wrote a black video; huge seeds, unknown devices and a guide past the
    end gave tracebacks or errors after the weights loaded; --fps 0 was silently ignored."""
    monkeypatch.setattr(loading_module, "load_pipeline", _must_not_load)
    out = tmp_path / "bad.mp4"
    assert generate(inputs, out, *(e.format(root=inputs) for e in extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("anisora: error:") and message in err, err
    assert not out.exists()


@pytest.mark.parametrize("size", ["0x0", "64x-48"])
def test_non_positive_size_is_refused(inputs, tmp_path, capsys, size):
    assert generate(inputs, tmp_path / "x.mp4", "--size", size) == 2
    assert "must be positive" in capsys.readouterr().err


def test_an_output_under_a_file_is_refused_before_the_model_loads(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loading_module, "load_pipeline", _must_not_load)
    (tmp_path / "file").write_text("finished work")
    assert generate(inputs, tmp_path / "file" / "out.mp4") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "finished work"


def _must_not_load(*args, **kwargs):
    raise AssertionError("the model was loaded before the request was checked")


def test_existing_output_is_kept_and_missing_model_explained(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "done.mp4"
    out.write_bytes(b"finished work")
    assert generate(inputs, out, "--frames", "9") == 2
    assert out.read_bytes() == b"finished work" and "--overwrite" in capsys.readouterr().err
    monkeypatch.setattr(weights, "DEMO_MODEL", tmp_path / "no-demo-model")
    assert main(["generate", "--image", str(inputs / "first.png"), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "train it with `make demo-model`" in capsys.readouterr().err
    assert main(["generate", "--model", "m", "--guide", "nonsense", "--out", "x.mp4"]) == 2
    assert "FRAME[@STRENGTH]:IMAGE" in capsys.readouterr().err


def test_the_shipped_demo_model_is_the_default(tmp_path):
    """No --model: the demo model animates a ToonWorld-sized guide, with its motion-region LoRA too."""
    first = np.zeros((96, 160, 3), np.uint8)
    first[30:70, 60:90] = (230, 80, 40)
    save_image(tmp_path / "first.png", first)
    out = tmp_path / "demo.mp4"
    args = ["generate", "--image", str(tmp_path / "first.png"), "--steps", "2", "--out", str(out)]
    assert main([*args, "--guide-fit-steps", "0", "--lora", str(weights.DEMO_REGION_LORA)]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["load"]["model"] == "anisora:demo-model"  # no machine path in a shared file
    assert sidecar["load"]["lora"] == "anisora:demo-model/region-lora"
    resolved = sidecar["resolved"]
    assert resolved["scheduler"] == "CogVideoXDDIMScheduler"  # the demo model's preset
    assert (resolved["num_frames"], resolved["width"], resolved["height"], resolved["fps"]) == (
        17,
        160,
        96,
        8,
    )
    assert (weights.DEMO_MODEL / "README.md").is_file()


def test_a_size_the_learned_position_embedding_lacks_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    from diffusers import CogVideoXTransformer3DModel

    from anisora.model.presets import transformer_config

    config = transformer_config("tiny", "anisora")
    config.update(use_learned_positional_embeddings=True, sample_height=4, sample_width=6)
    components = {**build_components("tiny"), "transformer": CogVideoXTransformer3DModel(**config)}
    AnisoraPipeline(**components).save_pretrained(tmp_path / "model")
    save_image(tmp_path / "first.png", np.zeros((32, 48, 3), np.uint8))
    monkeypatch.setattr(loading_module, "load_pipeline", _must_not_load)
    args = ["generate", "--model", str(tmp_path / "model"), "--image", str(tmp_path / "first.png")]
    assert main([*args, "--size", "64x48", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "covers 48x32 with up to 9 frames; 64x48 with 9 frames cannot be made" in capsys.readouterr().err


def test_guides_at_times_and_from_the_end(inputs, tmp_path):
    out = tmp_path / "timed.mp4"
    extra = ["--frames", "17", "--at", f"0.5:{inputs / 'last.png'}", f"--guide=-1:{inputs / 'last.png'}"]
    assert generate(inputs, out, *extra) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["resolved"]["guide_frames"] == [0, 16, 8]  # --image, --guide, then --at
    assert sidecar["request"]["guides"][2]["frame"] == {"t": 0.5}


def test_prompt_file_batch_places_images_by_time_and_resumes(inputs, tmp_path, capsys, monkeypatch):
    """The official V3 prompt file: one video per line, named by its line number, made with one load; a
    second run keeps what is made; a bad line is one error before anything loads."""
    first, last = inputs / "first.png", inputs / "last.png"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"a cat@@{first},{last}&&0,1\n\na dog@@{first}\n", encoding="utf-8")
    args = ["generate", "--model", str(inputs / "model"), "--size", "64x48", "--frames", "17", "--steps", "1"]
    args += ["--prompt-file", str(prompts), "--out-dir", str(tmp_path / "out")]
    assert main(args) == 0
    made = {n: json.loads((tmp_path / "out" / f"{n}.json").read_text()) for n in (0, 1)}
    assert made[0]["resolved"]["guide_frames"] == [0, 16] and made[0]["prompt_used"] == "a cat"
    assert made[1]["resolved"]["guide_frames"] == [0] and made[1]["prompt_used"] == "a dog"
    assert probe(tmp_path / "out" / "1.mp4").frame_count == 17
    monkeypatch.setattr(loading_module, "load_pipeline", _must_not_load)
    assert main(args) == 0  # both made: nothing loads
    prompts.write_text(f"a cat@@{first},{last}&&0,1\nbroken@@{first}&&2\n", encoding="utf-8")
    capsys.readouterr()
    assert main([*args[:-1], str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other/1.mp4: a guide time must be in [0, 1]" in err
    assert main([*args, "--prompt", "x"]) == 2  # a prompt file brings its own prompts
