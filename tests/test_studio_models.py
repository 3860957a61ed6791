"""The studio with released models: tiny random Wan2.1 and Wan2.2 (two experts) checkpoints written in the
official AniSora layout and converted as `anisora convert wan` converts a release (tests/test_releases.py's
writers), keeping V3's presets (16 fps, 81 frames, 8 steps, guidance 1, shift 5) on a CPU-sized frame.

Shots render by the serving model's rules; a long dialogue runs on in parts of the model's clip, each guided
by the previous part's last frame; GET /api/models reports each serving model and what it can do; a shot no
serving model can make is refused in one line (or, with none serving, failed by the worker with that line);
and the page shows the serving models and offers only what the chosen one can do.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import anisora.model.sampling as sampling
from anisora.cli import main
from anisora.media import probe
from anisora.model.info import ModelInfo
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components
from anisora.studio import jobs, models, service, worker
from anisora.studio.app import create_app
from anisora.studio.db import open_db
from anisora.studio.tts import Speech
from anisora.studio.worker import Worker
from test_convert_wan import write_tiny_base
from test_releases import write_wan_release
from test_studio_api import call, png, stored_shot
from test_studio_page import CHROMIUM, panel_png

WAN_SIZE = (48, 32)  # width, height: V3's 1280x720 shrunk for a CPU; its fps, frames and sampling are kept
NO_FLOW = "wan21-no-flow"  # Wan2.1 with a UniPC scheduler off flow-matching sigmas: no motion masks


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    """Model folders by served name: "wan21", "wan22" (converted releases), NO_FLOW and "tiny-v1" (a tiny
    CogVideoX in the official V1 layout: no mask channels, so first-frame guidance only)."""
    root = tmp_path_factory.mktemp("released")
    base = write_tiny_base(root / "base")
    folders = {}
    for name, experts in (("wan21", False), ("wan22", True)):
        release = write_wan_release(root / f"{name}-release", experts)
        folders[name] = root / name
        assert main(["convert", "wan", str(release), str(folders[name]), "--base", str(base), "-q"]) == 0
        index = json.loads((folders[name] / "model_index.json").read_text())
        index["anisora_presets"] |= dict(zip(("width", "height"), WAN_SIZE, strict=True))
        (folders[name] / "model_index.json").write_text(json.dumps(index))
    folders[NO_FLOW] = shutil.copytree(folders["wan21"], root / NO_FLOW)
    scheduler = folders[NO_FLOW] / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps(json.loads(scheduler.read_text()) | {"use_flow_sigmas": False}))
    folders["tiny-v1"] = root / "tiny-v1"
    AnisoraPipeline(**build_components("tiny", "v1")).save_pretrained(folders["tiny-v1"])
    return folders


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 300  # a hang guard, not a speed check
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


@contextmanager
def serving(db, data: Path, folders: dict[str, Path | None]) -> Iterator[None]:
    """One worker thread per served name (a model folder; None: the shipped demo model), each listed once
    its model has loaded; stopped at the end."""
    stop = threading.Event()
    threads = []
    for name, folder in folders.items():
        made = Worker(db, data, model=folder and str(folder), steps=2, model_name=name, device="cpu")
        threads.append(threading.Thread(target=made.run_forever, args=(stop,), daemon=True))
        threads[-1].start()

    def listed() -> bool:
        assert all(thread.is_alive() for thread in threads), "a worker thread died (its traceback is above)"
        return {m["name"] for m in models.served(db)} == set(folders)

    wait_until(listed, "every worker listed")
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)


@pytest.mark.parametrize(
    ("name", "panel", "steps", "size"),
    [("wan21", (96, 64), 2, (48, 32)), ("wan22", (64, 128), None, (32, 48))],
)
def test_a_shot_follows_the_released_models_rules(released, tmp_path, name, panel, steps, size):
    """16 fps, 81 frames (the model's clip: a shot without dialogue lasts it), the model's pixel count at the
    panel's shape in multiples of 16, and V3's sampling presets where the worker sets none."""
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    shot = stored_shot(db, tmp_path, panel=service.save_upload(tmp_path, png(*panel)))
    job_id = jobs.enqueue(db, shot["id"])
    assert Worker(db, tmp_path, model=str(released[name]), steps=steps).run_once()
    view = jobs.job_view(db, job_id)
    assert (view["status"], view["error"]) == ("done", None)
    result = view["result"]
    video = probe(tmp_path / result["video"])
    assert (video.fps, video.frame_count, (video.width, video.height)) == (16, 81, size)
    assert (result["fps"], result["frames"], result["model"]) == (16.0, [81], name)
    assert result["sampling"] == {"steps": steps or 8, "guidance": 1.0, "shift": 5.0}


def test_long_dialogue_runs_on_in_parts_of_the_models_clip(released, tmp_path, monkeypatch):
    """A 7 s line (7.7 s with the lead and tail) on a Wan model: a part of its 81-frame clip, cut mid-line,
    and a 45-frame part (the fewest 4k+1 frames lasting the 2.64 s left) guided by the first part's last
    frame."""
    line = Speech(np.zeros(7 * 16_000, np.float32), 16_000, {})
    monkeypatch.setattr(worker, "synthesize", lambda *args, **kwargs: line)
    made, real = [], sampling.sample

    def recording(pipe, request, progress=None):
        out = real(pipe, request, progress)
        made.append((request, out.frames))
        return out

    monkeypatch.setattr(sampling, "sample", recording)
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    job_id = jobs.enqueue(db, stored_shot(db, tmp_path, lines=(service.LineIn("a long line"),))["id"])
    Worker(db, tmp_path, model=str(released["wan21"]), steps=2).run_once()
    view = jobs.job_view(db, job_id)
    assert (view["status"], view["error"]) == ("done", None)
    result = view["result"]
    assert result["frames"] == [81, 45] and result["guide_frames"] == [[0], [0]]
    for part, frames in zip(result["parts"], result["frames"], strict=True):
        video = probe(tmp_path / part)
        assert (video.fps, video.frame_count) == (16, frames)
    assert probe(tmp_path / result["video"]).frame_count == 126
    (first, first_frames), (second, _) = made
    assert (first.frames, second.frames) == (81, 45)
    guide = second.guides[0]
    assert guide.frame == 0 and np.array_equal(guide.image, first_frames[-1])


def test_the_models_endpoint_reports_each_serving_model(released, tmp_path, live_server):
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    folders = {"demo-model": None, **{name: released[name] for name in ("wan21", "wan22", "tiny-v1")}}
    with live_server(create_app(db, tmp_path, reaper=False)) as base:
        with serving(db, tmp_path, folders):
            status, listed = call(base, "GET", "/api/models")
        assert call(base, "GET", "/api/models") == (200, {"models": []})  # stopped workers are unlisted
    assert status == 200
    served = {m["name"]: m for m in listed["models"]}
    demo, wan21, wan22, v1 = (served[name] for name in folders)
    assert {k: demo[k] for k in ("backbone", "fps", "frame_rule", "default_frames", "clip_frames")} == {
        "backbone": "cogvideox",
        "fps": 8,
        "frame_rule": "8k+1",
        "default_frames": 17,
        "clip_frames": None,  # rotary positions: no length of its own, parts up to the studio's 8 s
    }
    assert (demo["width"], demo["height"], demo["size_multiple"], demo["experts"]) == (160, 96, 16, 1)
    assert (demo["steps"], demo["guidance"], demo["shift"]) == (25, 1.0, None)  # the shipped presets
    assert demo["durations"] == {"min": 2.0, "max": 8.0, "default": 2.125}
    assert (demo["keyframes"], demo["motion_mask"]) == (True, True)
    assert demo["motion"] == {"kind": "embedding", "min": 0.0, "max": 30.0}
    for wan, experts in ((wan21, 1), (wan22, 2)):
        assert wan["experts"] == experts and len(wan["workers"]) == 1
        assert {k: wan[k] for k in ("backbone", "fps", "frame_rule", "default_frames", "clip_frames")} == {
            "backbone": "wan",
            "fps": 16,
            "frame_rule": "4k+1",
            "default_frames": 81,
            "clip_frames": 81,
        }
        assert (wan["width"], wan["height"], wan["size_multiple"]) == (*WAN_SIZE, 16)
        assert (wan["steps"], wan["guidance"], wan["shift"]) == (8, 1.0, 5.0)
        assert wan["durations"] == {"min": 2.0, "max": 5.062, "default": 5.062}  # 81 frames at 16 fps
        assert (wan["keyframes"], wan["motion_mask"]) == (True, True)
        assert wan["motion"] == {"kind": "prompt", "min": 0.0, "max": 5.0}
    assert (v1["keyframes"], v1["motion_mask"], v1["frame_rule"]) == (False, True, "8k+1")
    for name in ("wan21", "wan22", NO_FLOW):  # the config files alone tell the same (`anisora generate`)
        assert ModelInfo.read(released[name]).motion_mask is (name != NO_FLOW)


def test_what_no_serving_model_can_make_is_refused_in_one_line(released, tmp_path, live_server):
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    upload = service.save_upload(tmp_path, png())
    masked = stored_shot(db, tmp_path, panel=upload, mask=service.save_upload(tmp_path, png(seed=1)))
    last = stored_shot(db, tmp_path, panel=upload, last_frame=upload)
    long = stored_shot(db, tmp_path, panel=upload, seconds=6.0)
    no_mask = f"model {NO_FLOW} cannot hold a region still"
    folders = {NO_FLOW: released[NO_FLOW], "tiny-v1": released["tiny-v1"]}
    with live_server(create_app(db, tmp_path, reaper=False)) as base, serving(db, tmp_path, folders):

        def enqueue(shot: dict, model: str | None = None) -> tuple[int, dict]:
            return call(base, "POST", f"/api/shots/{shot['id']}/jobs", {"model": model} if model else None)

        status, refused = enqueue(masked)
        assert status == 400 and refused["detail"] == (
            f"{no_mask} (its scheduler samples without flow-matching sigmas): clear the motion mask;"
            " or ask for model tiny-v1, which can"
        )
        status, refused = enqueue(masked, NO_FLOW)
        assert status == 400 and refused["detail"].startswith(no_mask) and "tiny-v1" not in refused["detail"]
        status, refused = enqueue(last, "tiny-v1")
        assert status == 400 and refused["detail"] == (
            "model tiny-v1 is guided by the first frame only: remove the last frame and the keyframes"
        )
        status, refused = enqueue(long, NO_FLOW)
        assert status == 400 and refused["detail"] == (
            f"model {NO_FLOW}: this model makes at most 81 frames (5.06 s at 16 fps) a part;"
            " choose a shorter shot length than 6 s"
        )
        for shot, model in ((last, NO_FLOW), (long, "tiny-v1")):  # each model can make one of them
            status, job = enqueue(shot, model)
            assert status == 201 and call(base, "POST", f"/api/jobs/{job['id']}/cancel")[0] == 200
        image = "data:image/png;base64," + base64.b64encode(png()).decode()
        status, refused = call(base, "POST", "/v1/videos", {"input_reference": image, "mask": image})
        assert status == 400 and refused["detail"].startswith(no_mask)
        assert call(base, "GET", "/v1/videos")[1]["data"] == []  # refused before a shot was stored
        assert jobs.list_jobs(db, shot_id=masked["id"]) == []
    # with no worker serving, the job waits in the queue; the worker that claims it fails it with the reason
    job_id = jobs.enqueue(db, masked["id"], NO_FLOW)
    Worker(db, tmp_path, model=str(released[NO_FLOW]), model_name=NO_FLOW).run_once()
    view = jobs.job_view(db, job_id)
    assert view["status"] == "failed" and view["error"].startswith(no_mask) and view["result"] is None


@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed (Debian chromium)")
def test_the_page_shows_the_serving_models_and_offers_what_they_can_do(released, tmp_path, live_server):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    service.create_episode(db, "e")
    folders = {NO_FLOW: released[NO_FLOW], "tiny-v1": released["tiny-v1"]}
    with (
        live_server(create_app(db, tmp_path, reaper=False)) as base,
        serving(db, tmp_path, folders),
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready]")
        info = page.locator("#model-info")
        expect(info).to_contain_text(f"{NO_FLOW}: Wan2.1 · 16 fps · 4k+1 frames, clip 81 (5.06 s) · 48×32")
        expect(info).to_contain_text("tiny-v1: CogVideoX · 8 fps · 8k+1 frames")
        page.set_input_files("#panel-file", str(panel_png(tmp_path / "panel.png")))
        page.wait_for_selector("#stage[data-panel]")

        def offered() -> dict:
            return page.evaluate(
                """() => ({
                    brush: [...document.querySelectorAll('#brush-target option')].map((o) => o.value),
                    tools: !document.getElementById('brush-tools').hidden,
                    lastFrame: !document.getElementById('last-frame-group').hidden,
                    keyframes: !document.getElementById('keyframes-group').hidden,
                    motionMax: document.getElementById('motion').max,
                    secondsMax: document.getElementById('seconds').max,
                })"""
            )

        # any serving model may take the shot: only what both can do (no mask brush, no keyframes)
        expect(page.locator("#model-choice")).to_be_visible()
        assert offered() == {
            "brush": [],
            "tools": False,
            "lastFrame": False,
            "keyframes": False,
            "motionMax": "5",
            "secondsMax": "5.062",
        }
        page.select_option("#model-select", "tiny-v1")
        expect(page.locator("#model-abilities")).to_contain_text("first frame only")
        assert offered() | {"secondsMax": None} == {
            "brush": ["motion"],
            "tools": True,
            "lastFrame": False,
            "keyframes": False,
            "motionMax": "5",
            "secondsMax": None,
        }
        assert offered()["secondsMax"] == "8"
        page.select_option("#model-select", NO_FLOW)
        expect(page.locator("#model-abilities")).to_contain_text("no motion mask")
        assert offered() == {
            "brush": [],
            "tools": False,
            "lastFrame": True,
            "keyframes": True,
            "motionMax": "5",
            "secondsMax": "5.062",
        }
        # the shot goes to the chosen model's worker and comes back at its rules
        page.click("#submit")
        done = page.locator("#shot-list .shot[data-status=done]")
        expect(done).to_have_count(1, timeout=300_000)
        expect(done.locator(".take-model")).to_have_text(f"{NO_FLOW} · 16 fps")
        browser.close()
        assert errors == []
    (job,) = jobs.list_jobs(db)
    assert (job["model"], job["result"]["frames"], job["result"]["fps"]) == (NO_FLOW, [81], 16.0)
