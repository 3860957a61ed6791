"""Every AniSora release, as a tiny checkpoint in its official layout, converted once and then run by each
caller: `anisora generate`, `anisora evaluate run --model` and the studio worker.

The releases are written by the converter tests' official-layout writers (test_convert_sat_v1,
test_convert_wan). After conversion each model's recorded sampling size and fps are shrunk so that a CPU
makes a clip in seconds; everything else (steps aside) is the release's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from anisora.cli import main
from anisora.evaluate.cases import write_bench
from anisora.media import probe, save_image, write_video
from anisora.studio import jobs
from anisora.studio.db import open_db
from anisora.studio.worker import Worker
from test_convert_sat_v1 import sat_transformer, write_release
from test_convert_wan import (
    TINY,
    random_tensors,
    wan_transformer_shapes,
    wan_vae_shapes,
    write_tiny_base,
    write_wan_checkpoint,
)
from test_studio_api import stored_shot

# (release, convert kind, --release, Wan2.2 experts)
RELEASES = {
    "v1": ("sat-v1", None, False),
    "v2": ("wan", "v2", False),
    "v3.1": ("wan", "v3", False),
    "v3.2": ("wan", "v3", True),
    "anymask": ("wan", "anymask", False),
}
V1_SIZE, WAN_SIZE = (96, 64), (48, 32)  # width, height: V1's learned embedding fixes its size


def write_wan_release(folder: Path, experts: bool) -> Path:
    if experts:
        for seed, name in enumerate(("high_noise_model", "low_noise_model")):
            tensors = random_tensors(wan_transformer_shapes(**TINY, image_branch=False), seed=seed)
            write_wan_checkpoint(folder / name, tensors, shards=2, **TINY)
    else:
        write_wan_checkpoint(folder, random_tensors(wan_transformer_shapes(**TINY), seed=0), shards=2, **TINY)
    torch.save(random_tensors(wan_vae_shapes(), seed=1), folder / "Wan2.1_VAE.pth")
    return folder


def shrink(model: Path, backbone: str) -> None:
    """Record a CPU-sized sampling setup in the converted model (V1 keeps its 9-frame grid: at 4 fps a
    9-frame part lasts the studio's 2 s minimum)."""
    index_path = model / "model_index.json"
    index = json.loads(index_path.read_text())
    if backbone == "sat-v1":
        index["fps"] = 4
    else:
        width, height = WAN_SIZE
        index["anisora_presets"] |= {"fps": 8, "num_frames": 9, "width": width, "height": height}
    index_path.write_text(json.dumps(index))


@pytest.fixture(scope="module")
def wan_base(tmp_path_factory) -> Path:
    return write_tiny_base(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module", params=list(RELEASES))
def release(request, tmp_path_factory, wan_base) -> tuple[str, Path]:
    """(name, converted model directory) for each release."""
    name = request.param
    kind, preset, experts = RELEASES[name]
    root = tmp_path_factory.mktemp(name.replace(".", "_"))
    out = root / "converted"
    if kind == "sat-v1":
        src = write_release(root / "release", sat_transformer())
        assert main(["convert", "sat-v1", str(src), str(out)]) == 0
    else:
        src = write_wan_release(root / "release", experts)
        assert main(["convert", "wan", str(src), str(out), "--base", str(wan_base), "--release", preset]) == 0
    shrink(out, kind)
    return name, out


def panel(path: Path, name: str) -> Path:
    width, height = V1_SIZE if name == "v1" else WAN_SIZE
    save_image(path, (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8))
    return path


def test_generate(release, tmp_path):
    name, model = release
    out = tmp_path / "clip.mp4"
    args = ["generate", "--model", str(model), "--image", str(panel(tmp_path / "first.png", name))]
    if name == "anymask":  # its own input: a reference video with its mask video beside it
        video = np.random.default_rng(1).integers(0, 256, (9, 32, 48, 3), dtype=np.uint8)
        mask = np.zeros_like(video)
        mask[:, :, :24] = 255
        write_video(tmp_path / "ref.mp4", video, 8)
        write_video(tmp_path / "ref_mask.mp4", mask, 8)
        args = ["generate", "--model", str(model), "--known", str(tmp_path / "ref.mp4")]
    assert main([*args, "--prompt", "a girl waves", "--steps", "2", "--out", str(out)]) == 0
    resolved = json.loads(out.with_suffix(".json").read_text())["resolved"]
    info = probe(out)
    assert (info.width, info.height) == (V1_SIZE if name == "v1" else WAN_SIZE)
    assert info.frame_count == resolved["num_frames"] == 9
    assert resolved["backbone"] == ("cogvideox" if name == "v1" else "wan")


def test_evaluate_run(release, tmp_path):
    name, model = release
    bench = tmp_path / "bench"
    bench.mkdir()
    panel(bench / "first.png", name)
    cases = [{"id": "wave", "prompt": "a girl waves", "guides": [{"frame": 0, "image": "first.png"}]}]
    write_bench(bench / "bench.yaml", name, cases)  # frames, size and fps: the model's
    out = tmp_path / "run"
    args = ["evaluate", "run", "--bench", str(bench / "bench.yaml"), "--model", str(model)]
    assert main([*args, "--out", str(out), "--steps", "1", "--quiet"]) == 0
    assert [json.loads(line)["case"] for line in (out / "results.jsonl").read_text().splitlines()] == ["wave"]
    assert probe(out / "videos" / "wave.mp4").frame_count == 9


def test_studio_worker(release, tmp_path):
    name, model = release
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    job_id = jobs.enqueue(db, stored_shot(db, tmp_path, seconds=2.0)["id"])
    Worker(db, tmp_path, model=str(model), steps=1).run_once()
    view = jobs.job_view(db, job_id)
    assert (view["status"], view["error"]) == ("done", None)
    shot = probe(tmp_path / view["result"]["video"])
    assert shot.frame_count / shot.fps >= 2.0
    if name == "v1":  # the learned position embedding's size and frames, whatever the panel's shape
        assert (shot.width, shot.height, view["result"]["frames"]) == (*V1_SIZE, [9])
