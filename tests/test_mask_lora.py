"""A model's own mask LoRA (model_index.json `mask_lora`): loaded with the model, on for requests with a
motion mask only, off when asked or when another LoRA is given; a bad entry is one line before loading."""

import json
import shutil

import numpy as np
import pytest

from anisora.cli import main
from anisora.errors import InputError
from anisora.media import save_image
from anisora.model.info import ModelInfo
from anisora.model.loading import open_pipeline
from anisora.model.request import GuideSpec, LoadOptions, Request
from anisora.model.sampling import sample
from anisora.model.weights import DEMO_REGION_LORA, demo_model_dir


@pytest.fixture(scope="module")
def panel():
    image = np.full((96, 160, 3), 200, np.uint8)
    image[30:70, 60:90] = (230, 80, 40)
    mask = np.zeros((96, 160), np.uint8)
    mask[20:80, 50:100] = 255
    return image, mask


def frames(pipe, image, mask=None):
    # guide fitting (10 decoder passes with gradients) is not what these tests check
    request = Request(
        guides=(GuideSpec(image, 0),), mask=mask, steps=2, motion=8.0, frames=9, guide_fit_steps=0
    )
    result = sample(pipe, request)
    return result.frames.astype(np.int16), result.resolved["mask_lora"]


def test_the_demo_models_mask_lora_serves_masked_requests_only(panel):
    image, mask = panel
    assert ModelInfo.read(demo_model_dir()).mask_lora == DEMO_REGION_LORA.name
    with_lora = open_pipeline(LoadOptions(str(demo_model_dir())))
    without = open_pipeline(LoadOptions(str(demo_model_dir()), mask_lora=False))
    masked, applied = frames(with_lora, image, mask)
    assert applied and not frames(without, image, mask)[1]
    assert np.abs(masked - frames(without, image, mask)[0]).mean() > 0.1
    plain, applied = frames(with_lora, image)
    assert not applied
    np.testing.assert_array_equal(plain, frames(without, image)[0])
    # switched off for the plain request and on again: the masked request comes back the same
    np.testing.assert_array_equal(frames(with_lora, image, mask)[0], masked)


def test_generate_leaves_the_mask_lora_off_when_asked(panel, tmp_path):
    image, mask = panel
    save_image(tmp_path / "first.png", image)
    save_image(tmp_path / "mask.png", np.repeat(mask[..., None], 3, axis=2))
    args = ["generate", "--image", str(tmp_path / "first.png"), "--mask", str(tmp_path / "mask.png")]
    args += ["--steps", "2", "--frames", "9", "--guide-fit-steps", "0"]
    for extra, applied in (([], True), (["--no-mask-lora"], False)):
        out = tmp_path / f"{applied}.mp4"
        assert main([*args, *extra, "--out", str(out)]) == 0
        assert json.loads(out.with_suffix(".json").read_text())["resolved"]["mask_lora"] is applied


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("../region-lora", "must be a folder name"),
        (3, "must be a folder name"),
        ("missing", "not in the model"),
    ],
)
def test_a_bad_mask_lora_entry_is_one_line(tmp_path, value, message):
    model = tmp_path / "model"
    for part in ("transformer", "vae", "scheduler"):
        shutil.copytree(demo_model_dir() / part, model / part, ignore=shutil.ignore_patterns("*.safetensors"))
    index = json.loads((demo_model_dir() / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps(index | {"mask_lora": value}))
    with pytest.raises(InputError, match=message):
        ModelInfo.read(model)
