"""One rule for a guide's place: index, negative index, "last", or a time in [0, 1] (AniSora V3)."""

import json
import re
import shutil

import numpy as np
import pytest

from anisora.errors import InputError
from anisora.model.request import At, parse_frame, resolve_frame


def test_v3_times_give_the_official_frames():
    """The official V3 table for 81 frames: int((F - 1) t) rounded to a multiple of 8."""
    assert [resolve_frame(At(t), 81) for t in (0, 0.25, 0.5, 0.75, 1)] == [0, 16, 40, 64, 80]
    assert [resolve_frame(At(t), 49) for t in (0, 0.5, 1)] == [0, 24, 48]
    assert resolve_frame(At(1), 85) == 80  # 84 rounds to 80 (ties to even); never past the last frame
    assert resolve_frame(At(0.3), 17) == 0  # int(4.8) = 4, half of 8: Python's round ties to even, 0


@pytest.mark.parametrize(("spec", "frame"), [(0, 0), (16, 16), (-1, 16), (-17, 0), ("last", 16)])
def test_indices_and_last(spec, frame):
    assert resolve_frame(spec, 17) == frame


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (17, "guide frame 17 is outside the video: frames are 0-16, or -17..-1 from the end"),
        (-18, "guide frame -18 is outside"),
        (At(1.5), "a guide time must be in [0, 1]"),
        (At(float("nan")), "a guide time must be in [0, 1]"),
        (True, "a guide frame is an integer"),
        ("first", "a guide frame is an integer"),
    ],
)
def test_places_outside_the_clip_are_one_line(spec, message):
    with pytest.raises(InputError, match=re.escape(message)):
        resolve_frame(spec, 17)


def test_parse_frame():
    assert [parse_frame(t) for t in ("0", "-1", "last")] == [0, -1, "last"]
    with pytest.raises(InputError, match="integer or 'last'"):
        parse_frame("0.5")


def test_official_prompt_file_lines(tmp_path):
    """V3's `prompt@@img1,img2&&t1,t2` (the times place the images); V3.2 may leave `&&` out (t = 0)."""
    from anisora.model.request import parse_prompt_line

    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.png").write_bytes(b"")
    request = parse_prompt_line(" A girl waves. aesthetic score: 5.5. @@a.png,b.png&&0,0.5", tmp_path)
    assert request.prompt == "A girl waves. aesthetic score: 5.5."
    assert [(g.image, g.frame) for g in request.guides] == [
        (str(tmp_path / "a.png"), At(0.0)),
        (str(tmp_path / "b.png"), At(0.5)),
    ]
    assert [g.frame for g in parse_prompt_line("x@@a.png", tmp_path).guides] == [At(0.0)]
    for line, message in [
        ("no images here", "expected PROMPT@@IMAGE"),
        ("x@@a.png,b.png", "2 image(s) but 1 time(s)"),
        ("x@@a.png&&half", "times must be numbers"),
        ("x@@missing.png&&0", "missing.png not found"),
    ]:
        with pytest.raises(InputError, match=re.escape(message)):
            parse_prompt_line(line, tmp_path)


def test_request_and_load_values_are_checked_without_a_model():
    from anisora.model.request import LoadOptions, Request

    for request, message in [
        (Request(frames=17, seconds=2.0), "a frame count or a duration"),
        (Request(width=64), "both width and height"),
        (Request(steps=0), "steps must be an integer >= 1"),
        (Request(seed=2**64), "seed must be at most"),
        (Request(guidance=float("nan")), "guidance must be a finite number"),
        (Request(motion_guidance=-1.0), "motion guidance must be >= 0, got -1.0"),
        (Request(motion_guidance=float("inf")), "motion guidance must be a finite number"),
    ]:
        with pytest.raises(InputError, match=re.escape(message)):
            request.check()
    for load, message in [
        (LoadOptions("m", dtype="float64"), "dtype must be one of float32, bfloat16, float16"),
        (LoadOptions("m", offload="disk"), "offload must be one of model, sequential, group"),
        (LoadOptions("m", lora_scale=float("inf")), "lora scale must be a finite number"),
        (LoadOptions("m", scheduler="euler"), "scheduler must be one of ddim, dpm"),
    ]:
        with pytest.raises(InputError, match=re.escape(message)):
            load.check()


def test_presets_are_read_and_checked(tmp_path):
    """A model's release settings come from model_index.json; unknown or mistyped entries are one line."""
    from anisora.model.conditioning import Guide
    from anisora.model.info import ModelInfo
    from anisora.model.weights import DEMO_MODEL

    assert ModelInfo.read(DEMO_MODEL).aesthetic == 5.0  # trained on ToonWorld's 5.0; official models 5.5
    wan = ModelInfo.wan({"steps": 8, "guidance": 1, "prompt_suffix": " There is no text in the video."})
    assert (wan.steps, wan.guidance, wan.aesthetic, wan.fps, wan.frame_step) == (8, 1.0, 5.5, 16, 4)
    for presets, message in [
        ({"stepz": 8}, "unknown anisora_presets entry 'stepz'"),
        ({"steps": 7.5}, "steps must be a int"),
        ({"prompt_suffix": 3}, "prompt_suffix must be a str"),
        ({"scheduler": "ddim"}, "unknown anisora_presets entry 'scheduler'"),  # Wan keeps its UniPC
        ({"keyframe_steps": 4}, "unknown anisora_presets entry 'keyframe_steps'"),
        ({"motion_guidance": 2}, "unknown anisora_presets entry 'motion_guidance'"),  # no motion embedding
        ([8], "must be a mapping"),
    ]:
        with pytest.raises(InputError, match=re.escape(message)):
            ModelInfo.wan(presets)
    assert ModelInfo.read(DEMO_MODEL).interpolation == "flow"
    copy = tmp_path / "demo"
    shutil.copytree(DEMO_MODEL, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    index = json.loads((copy / "model_index.json").read_text())
    index.pop("guide_interpolation")
    (copy / "model_index.json").write_text(json.dumps(index))
    assert ModelInfo.read(copy).interpolation == "latent"  # a model_index.json without the entry
    demo = ModelInfo.read(DEMO_MODEL)
    assert (demo.scheduler, demo.steps) == ("ddim", 25)
    keyframes = [Guide(np.zeros((8, 8, 3), np.uint8), frame) for frame in (0, 16)]
    assert (demo.default_steps(keyframes[:1]), demo.default_steps(keyframes)) == (25, demo.keyframe_steps)
    presets = index.pop("anisora_presets")
    (copy / "model_index.json").write_text(json.dumps(index))
    plain = ModelInfo.read(copy)
    assert (plain.scheduler, plain.default_steps(keyframes)) == ("dpm", 50)  # CogVideoX's own
    (copy / "model_index.json").write_text(
        json.dumps({**index, "anisora_presets": {**presets, "scheduler": "pndm"}})
    )
    with pytest.raises(InputError, match="anisora_presets scheduler must be one of ddim, dpm, got 'pndm'"):
        ModelInfo.read(copy)
    (copy / "model_index.json").write_text(json.dumps({**index, "guide_interpolation": "optical"}))
    with pytest.raises(
        InputError, match=r"guide_interpolation in model_index\.json must be one of latent, flow"
    ):
        ModelInfo.read(copy)


def test_motion_guidance_presets_and_who_gets_them(tmp_path):
    """The demo model's preset guides single-guide requests; between keyframes only when asked; a scale
    asked for explicitly wins; out-of-range presets and models without a motion embedding are one line."""
    from anisora.model.conditioning import Guide
    from anisora.model.info import ModelInfo
    from anisora.model.motion_guidance import MotionGuidance
    from anisora.model.weights import DEMO_MODEL

    demo = ModelInfo.read(DEMO_MODEL)
    preset = demo.motion_guidance
    assert preset.scale > 0 and 0 < preset.until < 1
    one, two = (
        [Guide(np.zeros((8, 8, 3), np.uint8), frame) for frame in frames] for frames in ([0], [0, 16])
    )
    assert demo.motion_guidance_for(one) == preset and demo.motion_guidance_for([]) == preset
    assert demo.motion_guidance_for(two) is None  # the keyframes set the motion
    assert demo.motion_guidance_for(two, 1.5) == MotionGuidance(1.5, preset.reference, preset.until)
    assert demo.motion_guidance_for(one, 0.0) is None
    wan = ModelInfo.wan(None)
    assert wan.motion_guidance_for(one) is None
    with pytest.raises(InputError, match="motion guidance needs a model with a motion embedding"):
        wan.motion_guidance_for(one, 2.0)
    copy = tmp_path / "demo"
    shutil.copytree(DEMO_MODEL, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    index = json.loads((copy / "model_index.json").read_text())
    for presets, message in [
        ({"motion_guidance_until": 1.5}, r"anisora_presets motion guidance until must be in \(0, 1\]"),
        ({"motion_guidance": -2.0}, "anisora_presets motion guidance scale must be a number >= 0"),
        ({"motion_guidance_reference": "8"}, "motion_guidance_reference must be a float"),
    ]:
        (copy / "model_index.json").write_text(
            json.dumps({**index, "anisora_presets": {**index["anisora_presets"], **presets}})
        )
        with pytest.raises(InputError, match=message):
            ModelInfo.read(copy)
    (copy / "model_index.json").write_text(json.dumps({**index, "motion_embedding": False}))
    with pytest.raises(InputError, match="motion_guidance needs a model with a motion embedding"):
        ModelInfo.read(copy)
