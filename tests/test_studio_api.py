"""The studio's HTTP API end to end on a real server with a tiny random model: a dubbed shot from a panel and
dialogue, the episode, queue controls, hostile uploads, tokens, and a server killed mid-job."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anisora.media import probe
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components
from anisora.studio import jobs
from anisora.studio.app import create_app
from anisora.studio.db import open_db
from anisora.studio.worker import Worker, shot_size


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model") / "tiny"
    AnisoraPipeline(**build_components("tiny", "anisora")).save_pretrained(root)
    return root


def png(width: int = 96, height: int = 64, seed: int = 0, fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def flat_png(width: int, height: int) -> bytes:
    """A large image in a small file (a decompression bomb, mildly)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def call(base: str, method: str, path: str, body=None, headers=None) -> tuple[int, object]:
    data, head = None, dict(headers or {})
    if isinstance(body, bytes):  # multipart upload of one file
        boundary = uuid.uuid4().hex
        data = (
            (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="../../etc/passwd"\r\n'
                f"Content-Type: image/png\r\n\r\n"
            ).encode()
            + body
            + f"\r\n--{boundary}--\r\n".encode()
        )
        head["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif body is not None:
        data, head["Content-Type"] = json.dumps(body).encode(), "application/json"
    req = urllib.request.Request(base + path, data=data, headers=head, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            raw, kind = response.read(), response.headers.get("content-type", "")
            return response.status, json.loads(raw) if kind.startswith("application/json") else raw
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def make_shot(base: str, lines=(), **fields) -> dict:
    status, episode = call(base, "POST", "/api/episodes", {"title": "第一话"})
    assert status == 201
    status, up = call(base, "POST", "/api/uploads", png())
    assert status == 200
    status, shot = call(
        base,
        "POST",
        f"/api/episodes/{episode['id']}/shots",
        {"panel": up["name"], "lines": list(lines), **fields},
    )
    assert status == 201, shot
    return shot


def wait_for(base: str, job_id: int, statuses: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = call(base, "GET", f"/api/jobs/{job_id}")[1]
        if view["status"] in statuses:
            return view
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {view['status']}")


@pytest.fixture
def studio(tmp_path, model, live_server):
    db = open_db(f"sqlite:///{tmp_path / 'studio.sqlite'}")
    worker = Worker(db, tmp_path, model=str(model), steps=2)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    with live_server(create_app(db, tmp_path)) as base:
        thread.start()
        yield base, db, tmp_path
        stop.set()
        thread.join(30)


def test_a_dubbed_shot_and_its_episode(studio):
    base, _db, data = studio
    status, ann = call(
        base, "POST", "/api/characters", {"name": "小安", "engine": "espeak-ng", "voice": "cmn"}
    )
    assert status == 201
    lines = [
        {"text": "你好，我们走吧。", "character_id": ann["id"], "emotion": "happy"},
        {"text": "Wait for me, it is a long way to the station.", "emotion": "sad"},
    ]
    shot = make_shot(base, lines, prompt="a girl waves", presets=["the character blinks"], motion=3.0)
    assert [line["text"] for line in shot["lines"]] == [lines[0]["text"], lines[1]["text"]]
    status, job = call(base, "POST", f"/api/shots/{shot['id']}/jobs")
    assert status == 201 and job["status"] in ("queued", "running")  # the worker may have claimed it
    assert call(base, "POST", f"/api/shots/{shot['id']}/jobs")[0] == 409  # one active job per shot
    done = wait_for(base, job["id"], {"done", "failed"})
    assert done["status"] == "done", done.get("error")
    result = done["result"]
    video = probe(data / result["video"])
    assert video.has_audio and (video.frame_count - 1) % 8 == 0
    assert (video.width, video.height) == (80, 48)  # the tiny model's 64x64 pixels at the 96x64 panel's shape
    dialogue_end = max(cue[1] for cue in result["cues"])
    assert dialogue_end > 1.0 and video.frame_count / video.fps >= dialogue_end  # the shot fits its dialogue
    srt = call(base, "GET", f"/api/jobs/{job['id']}/srt")[1].decode("utf-8")
    assert "你好，我们走吧。" in srt and "小安" in srt
    assert call(base, "GET", f"/api/jobs/{job['id']}/video")[0] == 200
    assert {d["emotion"] for d in result["dubbing"]} == {"happy", "sad"}
    status, episode = call(base, "POST", f"/api/episodes/{shot['episode_id']}/render")
    assert status == 200 and episode["seconds"] == pytest.approx(video.frame_count / video.fps, abs=0.01)
    assert probe(data / episode["video"]).has_audio
    assert call(base, "GET", f"/api/episodes/{shot['episode_id']}/srt")[0] == 200
    status, schema = call(base, "GET", "/openapi.json")
    assert status == 200 and "/api/shots/{shot_id}/jobs" in schema["paths"]


def test_long_dialogue_makes_a_follow_on_part(studio):
    base, _db, data = studio
    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    shot = make_shot(base, [{"text": words}, {"text": words}, {"text": words}])
    job = call(base, "POST", f"/api/shots/{shot['id']}/jobs")[1]
    done = wait_for(base, job["id"], {"done", "failed"})
    assert done["status"] == "done", done.get("error")
    assert len(done["result"]["parts"]) >= 2 and all((f - 1) % 8 == 0 for f in done["result"]["frames"])
    total = probe(data / done["result"]["video"])
    assert total.frame_count == sum(done["result"]["frames"])
    episode = call(base, "POST", f"/api/episodes/{shot['episode_id']}/render")[1]
    shot_srt = (data / done["result"]["srt"]).read_text(encoding="utf-8")
    assert (data / episode["srt"]).read_text(encoding="utf-8") == shot_srt  # one shot: the same timing


def test_pause_resume_cancel_retry(studio):
    base, _db, _data = studio
    shot = make_shot(base, seconds=2.0)
    job = call(base, "POST", f"/api/shots/{shot['id']}/jobs")[1]
    status, paused = call(base, "POST", f"/api/jobs/{job['id']}/pause")
    assert status == 200 and paused["status"] in ("paused", "running", "done")
    if paused["status"] == "paused":
        assert call(base, "POST", f"/api/jobs/{job['id']}/retry")[0] == 400  # only failed/cancelled
        assert call(base, "POST", f"/api/jobs/{job['id']}/resume")[1]["status"] == "queued"
    wait_for(base, job["id"], {"done"})
    assert call(base, "POST", f"/api/jobs/{job['id']}/cancel")[0] == 400  # done is final
    second = make_shot(base, seconds=2.0)
    job2 = call(base, "POST", f"/api/shots/{second['id']}/jobs")[1]
    call(base, "POST", f"/api/jobs/{job2['id']}/cancel")
    cancelled = wait_for(base, job2["id"], {"cancelled", "done"})
    if cancelled["status"] == "cancelled":
        assert call(base, "POST", f"/api/jobs/{job2['id']}/retry")[1]["status"] == "queued"
        wait_for(base, job2["id"], {"done"})
    assert call(base, "POST", f"/api/jobs/{job2['id']}/explode")[0] == 404
    assert call(base, "GET", "/api/jobs/999")[0] == 404


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"GIF89a" + bytes(100), "not a readable image"),
        (png(fmt="GIF"), "GIF"),
        (b"%PDF-1.4 not an image", "not a readable image"),
        (flat_png(5000, 4000), "pixels"),
        (png() + bytes(21 * 2**20), "limit"),
    ],
)
def test_hostile_uploads_are_refused(studio, content, message):
    base, _db, data = studio
    status, body = call(base, "POST", "/api/uploads", content)
    assert status == 400 and message in body["detail"]
    assert not list(data.glob("uploads/*"))  # nothing stored


def test_uploads_are_stored_under_random_names_and_paths_are_refused(studio):
    base, _db, data = studio
    status, up = call(base, "POST", "/api/uploads", png(fmt="JPEG"))
    assert status == 200 and up["name"].endswith(".png") and "passwd" not in up["name"]
    assert (data / "uploads" / up["name"]).is_file()
    assert call(base, "GET", f"/api/uploads/{up['name']}")[0] == 200
    for bad in ("..%2Fstudio.sqlite", "x.png", "%2Fetc%2Fpasswd"):
        assert call(base, "GET", f"/api/uploads/{bad}")[0] == 404
    status, episode = call(base, "POST", "/api/episodes", {"title": "e"})
    status, body = call(base, "POST", f"/api/episodes/{episode['id']}/shots", {"panel": "../studio.sqlite"})
    assert status == 400 and "no such upload" in body["detail"]
    status, body = call(
        base, "POST", f"/api/episodes/{episode['id']}/shots", {"panel": up["name"], "seconds": 9}
    )
    assert status == 400 and "2-8 s" in body["detail"]
    status, body = call(base, "POST", "/api/characters", {"name": "x", "engine": "rm -rf"})
    assert status == 400


def test_off_loopback_needs_the_token(tmp_path, live_server):
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    with live_server(create_app(db, tmp_path, token="s3cret", reaper=False)) as base:
        assert call(base, "GET", "/api/episodes")[0] == 401
        assert call(base, "GET", "/api/episodes", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert call(base, "GET", "/api/episodes", headers={"Authorization": "Bearer s3cret"})[0] == 200
        with urllib.request.urlopen(base + "/?token=s3cret", timeout=10) as response:
            assert "anisora_studio_token=s3cret" in response.headers.get("set-cookie", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(data: Path, port: int, model: Path, steps: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "anisora.cli", "studio", "--data", str(data), "--port", str(port)]
    cmd += ["--model", str(model), "--steps", str(steps)]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/episodes", timeout=1)
            return process
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.2)
    raise AssertionError("the studio did not start")


def test_a_job_running_when_the_server_dies_is_requeued_on_restart(tmp_path, model):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port, model, steps=1000)  # the most a schedule has: seconds to kill it in
    try:
        job = call(base, "POST", f"/api/shots/{make_shot(base, seconds=2.0)['id']}/jobs")[1]
        running = wait_for(base, job["id"], {"running"})
        assert running["progress"] < 1.0
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        db = open_db(f"sqlite:///{tmp_path / 'studio.sqlite'}")
        assert jobs.job_view(db, job["id"])["status"] == "running"  # what the dead server left behind
        server = start_server(tmp_path, port, model, steps=2)
        view = wait_for(base, job["id"], {"done", "failed"})
        assert view["status"] == "done" and view["attempts"] == 2
    finally:
        server.kill()
        server.wait(10)


def test_shot_size_keeps_the_model_pixels_at_the_panel_shape():
    assert shot_size(180, 320, 96, 160) == (96, 160)
    assert shot_size(320, 180, 96, 160) == (160, 96)  # a portrait panel is not cropped to landscape
    assert shot_size(500, 500, 96, 160) == (128, 128)


def test_extra_keyframes_guide_their_frame_and_one_past_the_end_fails(studio):
    base, _db, _data = studio
    key = call(base, "POST", "/api/uploads", png(seed=3))[1]["name"]
    shot = make_shot(base, seconds=2.0, keyframes=[{"at": 1.0, "image": key}])
    assert shot["keyframes"] == [{"at": 1.0, "image": key}]
    done = wait_for(base, call(base, "POST", f"/api/shots/{shot['id']}/jobs")[1]["id"], {"done", "failed"})
    assert done["status"] == "done", done.get("error")
    fps = done["result"]["fps"]
    assert done["result"]["guide_frames"] == [[0, round(1.0 * fps)]]
    late = make_shot(base, seconds=2.0, keyframes=[{"at": 5.0, "image": key}])
    failed = wait_for(base, call(base, "POST", f"/api/shots/{late['id']}/jobs")[1]["id"], {"done", "failed"})
    assert failed["status"] == "failed" and "after the shot's end" in failed["error"]
    status, body = call(
        base,
        "POST",
        f"/api/episodes/{shot['episode_id']}/shots",
        {"panel": key, "keyframes": [{"at": 0, "image": key}]},
    )
    assert status == 400 and "keyframe" in body["detail"]


def test_a_new_take_keeps_the_finished_one_in_view(tmp_path):
    from anisora.studio import service

    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    episode = service.create_episode(db, "e")
    shot = service.create_shot(
        db, tmp_path, episode["id"], service.ShotIn(panel=service.save_upload(tmp_path, png()))
    )
    first = jobs.enqueue(db, shot["id"])
    assert jobs.claim(db, "w") == first and jobs.finish(db, first, "w", {"video": "x.mp4"})
    second = jobs.enqueue(db, shot["id"])
    view = service.get_shot(db, shot["id"])
    assert (view["job"]["id"], view["job"]["status"]) == (second, "queued")
    assert (view["take"]["id"], view["take"]["result"]) == (first, {"video": "x.mp4"})
