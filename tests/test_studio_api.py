"""The studio's HTTP API end to end on a real server with a tiny random model: a dubbed shot from a panel and
dialogue, the episode, queue controls, hostile uploads and requests (each refused in one line), request
limits, tokens and foreign hosts, one active job per shot, heartbeats, and a server killed mid-job."""

from __future__ import annotations

import base64
import http.client
import importlib
import io
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from anisora.errors import InputError
from anisora.media import probe
from anisora.model.pipeline import AnisoraPipeline
from anisora.model.presets import build_components
from anisora.studio import jobs, service, worker
from anisora.studio.app import MULTIPART_SLACK, create_app
from anisora.studio.db import ACTIVE_STATUSES, Job, open_db, utcnow
from anisora.studio.tts import Speech
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


def raw_request(base: str, method: str, path: str, headers: dict, chunks=()) -> tuple[int, dict]:
    """Send a request's head and then `chunks` as a chunked body that never ends; read the answer. Only what a
    server has to read before it can answer is sent, so its answer is never lost to a reset connection."""
    url = urlsplit(base)
    head = "".join(f"{name}: {value}\r\n" for name, value in {"Host": url.netloc, **headers}.items())
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode())
        for chunk in chunks:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def pieces(body: bytes, size: int = 2**16) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


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


def wait_for(base: str, job_id: int, statuses: set[str], timeout: float = 300) -> dict:
    # a guard against a hang, not a speed check: a loaded machine may take minutes
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = call(base, "GET", f"/api/jobs/{job_id}")[1]
        if view["status"] in statuses:
            return view
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stayed {view['status']}")


def stored_shot(db, data: Path, **fields) -> dict:
    """A shot made through the service (no server) in a new episode; its panel a new upload unless given."""
    episode = service.create_episode(db, "e")
    fields.setdefault("panel", service.save_upload(data, png()))
    return service.create_shot(db, data, episode["id"], service.ShotIn(**fields))


def eventually(condition, what: str) -> None:
    """Wait for another thread to make `condition()` true (the deadline only stops a test that would hang)."""
    deadline = time.monotonic() + 300
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        threading.Event().wait(0.005)


@pytest.fixture
def bare(tmp_path, live_server):
    """A studio server on loopback without a worker: (base URL, database, data folder)."""
    db = open_db(f"sqlite:///{tmp_path / 'studio.sqlite'}")
    with live_server(create_app(db, tmp_path, reaper=False)) as base:
        yield base, db, tmp_path


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
        (flat_png(16000, 1), "16000x1; its long side may be at most 4 times its short side"),
        (flat_png(16, 1000), "16x1000; its long side may be at most 4 times its short side"),
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
    deadline = time.monotonic() + 180  # a hang guard only
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
    # with dialogue, which may run a fixed-length shot on in follow-on parts, only the worker can tell
    late = make_shot(base, [{"text": "Hi."}], seconds=2.0, keyframes=[{"at": 5.0, "image": key}])
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
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    shot = stored_shot(db, tmp_path)
    first = jobs.enqueue(db, shot["id"])
    assert jobs.claim(db, "w") == first and jobs.finish(db, first, "w", {"video": "x.mp4"})
    second = jobs.enqueue(db, shot["id"])
    view = service.get_shot(db, shot["id"])
    assert (view["job"]["id"], view["job"]["status"]) == (second, "queued")
    assert (view["take"]["id"], view["take"]["result"]) == (first, {"video": "x.mp4"})


# --- issue 13: every hostile input gets one clear line ---


def test_the_worker_beats_through_a_long_silent_stage(tmp_path, model, monkeypatch):
    """Dubbing, like decoding, muxing and concatenating, reports no progress; the job must not look lost."""
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    job_id = jobs.enqueue(db, stored_shot(db, tmp_path, lines=(service.LineIn("Hello."),), seconds=2.0)["id"])
    speak = worker.synthesize

    def slow_synthesize(*args, **kwargs):
        with db.session() as s:  # as if this line had taken twice the stale limit
            s.get(Job, job_id).heartbeat = utcnow() - timedelta(seconds=2 * jobs.STALE_S)
        eventually(fresh, "a heartbeat from the worker's thread while it dubs")
        assert jobs.requeue_stale(db, jobs.STALE_S) == []
        return speak(*args, **kwargs)

    def fresh() -> bool:
        beat = datetime.fromisoformat(jobs.job_view(db, job_id)["heartbeat"])
        return beat > utcnow() - timedelta(seconds=jobs.STALE_S / 2)

    monkeypatch.setattr(worker, "synthesize", slow_synthesize)
    Worker(db, tmp_path, model=str(model), steps=1, heartbeat_s=0.01).run_once()
    view = jobs.job_view(db, job_id)
    assert (view["status"], view["attempts"], view["error"]) == ("done", 1, None)


def test_shot_size_bounds_the_aspect_and_so_the_pixels():
    for panel in [(1, 16000), (16000, 1), (16, 15680)]:
        height, width = shot_size(*panel, 96, 160)
        assert max(height, width) <= 4 * min(height, width) and height * width <= 1.1 * 96 * 160


def test_request_bodies_over_their_limit_are_refused_before_they_are_read(bare):
    base, _db, _data = bare
    json_head = {"Content-Type": "application/json"}
    status, body = raw_request(base, "POST", "/api/episodes", {**json_head, "Content-Length": "200000000"})
    assert (status, body["detail"]) == (413, "request body is 190.7 MB; the limit is 0.25 MB")
    upload_head = {"Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(21 * 2**20)}
    status, body = raw_request(base, "POST", "/api/uploads", upload_head)
    assert (status, body["detail"]) == (413, "upload is 21.0 MB; the limit is 20 MB")
    # no length given: the body is cut off as it streams past the limit
    chunked = {"Transfer-Encoding": "chunked"}
    chunks = [*pieces(b'{"title": "' + b"x" * (service.MAX_BODY_BYTES - 11)), b"x"]  # one byte over
    status, body = raw_request(base, "POST", "/api/episodes", {**json_head, **chunked}, chunks)
    assert (status, body["detail"]) == (413, "request body is over the 0.25 MB limit")
    assert call(base, "GET", "/api/episodes") == (200, [])


def test_a_streamed_upload_is_cut_off_at_its_limit(bare, monkeypatch):
    base, _db, data = bare
    monkeypatch.setattr(service, "MAX_UPLOAD_BYTES", 2**20)
    head = {"Content-Type": "multipart/form-data; boundary=x", "Transfer-Encoding": "chunked"}
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    chunks = [*pieces(part + bytes(2**20 + MULTIPART_SLACK - len(part))), b"x"]  # one byte over
    status, body = raw_request(base, "POST", "/api/uploads", head, chunks)
    assert (status, body["detail"]) == (413, "upload is over the 1 MB limit")
    assert not list(data.glob("uploads/*"))


def test_invalid_fields_get_a_short_line_that_does_not_echo_them(bare):
    base, _db, _data = bare
    status, body = call(base, "POST", "/api/episodes", {"title": "x" * 100_000})
    assert (status, body["detail"]) == (422, "title: String should have at most 80 characters")
    episode = call(base, "POST", "/api/episodes", {"title": "e"})[1]
    lines = [{"text": 7, "emotion": "a" * 5000} for _ in range(30)]
    status, body = call(base, "POST", f"/api/episodes/{episode['id']}/shots", {"panel": "p", "lines": lines})
    assert status == 422 and body["detail"].startswith("lines.0.text: Input should be a valid string (and ")
    assert len(body["detail"]) < 100


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"presets": ["the character blinks"] * 11}, 422, "presets: List should have at most 10 items"),
        ({"presets": ["x" * 201]}, 422, "presets.0: String should have at most 200 characters"),
        (
            {"prompt": "x" * 1990, "presets": ["the character blinks"]},
            400,
            "the prompt with its quick prompts is 2013 characters; at most 2000",
        ),
        ({"lines": [{"text": "hi"}] * 41}, 422, "lines: List should have at most 40 items"),
        (
            {"lines": [{"text": "x" * 900}] * 3},
            400,
            "the dialogue is 2700 characters; at most 2000 per shot (split it across shots)",
        ),
    ],
)
def test_prompts_and_dialogue_are_bounded_per_shot(bare, fields, status, message):
    base, _db, _data = bare
    episode = call(base, "POST", "/api/episodes", {"title": "e"})[1]
    panel = call(base, "POST", "/api/uploads", png())[1]["name"]
    answer = call(base, "POST", f"/api/episodes/{episode['id']}/shots", {"panel": panel, **fields})
    assert answer[0] == status and answer[1]["detail"].startswith(message)
    assert call(base, "GET", f"/api/episodes/{episode['id']}")[1]["shots"] == []


def test_a_shot_at_every_limit_fits_the_request_limit(bare):
    base, _db, _data = bare
    episode = call(base, "POST", "/api/episodes", {"title": "e" * service.MAX_NAME})[1]
    image = call(base, "POST", "/api/uploads", png())[1]["name"]
    per_line = service.MAX_DIALOGUE // service.MAX_LINES
    presets = ["风" * (service.MAX_PRESET // 4)] * service.MAX_PRESETS
    shot = {  # CJK text: 6 bytes a character in ASCII-only JSON
        "panel": image,
        "prompt": "云" * (service.MAX_PROMPT - 2 - len(service.shot_prompt("", presets))),
        "presets": presets,
        "lines": [{"text": "语" * per_line, "emotion": "happy"}] * service.MAX_LINES,
        "keyframes": [{"at": 1.0 + i, "image": image} for i in range(service.MAX_KEYFRAMES)],
        "seed": service.MAX_SEED,
    }
    assert len(json.dumps(shot)) < service.MAX_BODY_BYTES / 4
    assert call(base, "POST", f"/api/episodes/{episode['id']}/shots", shot)[0] == 201


def test_parallel_submissions_make_one_active_job(bare):
    base, db, _data = bare
    shot = make_shot(base)
    start, answers = threading.Barrier(50), []

    def submit() -> None:
        start.wait()
        answers.append(call(base, "POST", f"/api/shots/{shot['id']}/jobs"))

    threads = [threading.Thread(target=submit) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(status for status, _ in answers) == [201] + [409] * 49
    created = next(body for status, body in answers if status == 201)
    assert {body["detail"] for status, body in answers if status == 409} == {
        f"shot {shot['id']} already has job {created['id']} (queued)"
    }
    active = [j for j in jobs.list_jobs(db, shot_id=shot["id"]) if j["status"] in ACTIVE_STATUSES]
    assert [j["id"] for j in active] == [created["id"]]


@pytest.mark.parametrize(
    ("method", "path", "body", "message"),
    [
        ("GET", f"/api/episodes/{2**63}", None, "episode_id: Input should be less than or equal to"),
        ("GET", f"/api/jobs/{10**20}", None, "job_id: Input should be less than or equal to"),
        ("POST", f"/api/shots/{2**63}/jobs", None, "shot_id: Input should be less than or equal to"),
        ("POST", "SHOTS", {"seed": 2**63}, "seed: Input should be less than or equal to 2147483647"),
        ("POST", "SHOTS", {"lines": [{"text": "hi", "character_id": 2**64}]}, "lines.0.character_id:"),
        ("POST", "SHOTS", {"seconds": float("nan")}, "seconds: Input should be a finite number"),
        ("POST", "SHOTS", {"prompt": "\ud800"}, "prompt: Value error, not valid Unicode text"),
        ("POST", "SHOTS", {"lines": [{"text": "a\udfffb"}]}, "lines.0.text: Value error, not valid Unicode"),
        ("POST", "/api/episodes", {"title": "\ud800"}, "title: Value error, not valid Unicode text"),
        ("POST", "/api/characters", {"name": "x", "voice": "\udc80"}, "voice: Value error, not valid"),
    ],
)
def test_out_of_range_numbers_and_broken_text_get_one_line(bare, method, path, body, message):
    base, _db, _data = bare
    if path == "SHOTS":
        episode = call(base, "POST", "/api/episodes", {"title": "e"})[1]
        panel = call(base, "POST", "/api/uploads", png())[1]["name"]
        path, body = f"/api/episodes/{episode['id']}/shots", {"panel": panel, **body}
    status, answer = call(base, method, path, body)
    assert status == 422 and answer["detail"].startswith(message)


def test_the_token_scheme_is_case_insensitive_and_any_token_is_compared(tmp_path, live_server):
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    with live_server(create_app(db, tmp_path, token="s3cret", reaper=False)) as base:
        for header in ("bearer s3cret", "BEARER  s3cret"):
            assert call(base, "GET", "/api/episodes", headers={"Authorization": header})[0] == 200
        for header in ("Bearer \xe9t\xe9", "Basic s3cret", "Bearers3cret"):
            status, body = call(base, "GET", "/api/episodes", headers={"Authorization": header})
            assert (status, body["detail"]) == (401, "a token is required (Authorization: Bearer TOKEN)")
        assert call(base, "GET", "/api/episodes?token=%E2%9C%93")[0] == 401


def test_on_loopback_only_this_machine_and_this_site_are_answered(bare):
    base, _db, data = bare
    port = urlsplit(base).port
    for host in (f"localhost:{port}", "LOCALHOST", f"[::1]:{port}", f"127.0.0.2:{port}", "127.0.0.1"):
        assert call(base, "GET", "/api/episodes", headers={"Host": host})[0] == 200
    for host in ("evil.example", f"evil.example:{port}", f"localhost.evil.example:{port}", "[::2]"):
        status, body = call(base, "GET", "/api/episodes", headers={"Host": host})
        assert status == 421 and body["detail"].startswith("this studio answers only to a loopback host")
    for origin in ("http://evil.example", f"http://localhost:{port}", "null"):
        status, body = call(base, "POST", "/api/episodes", {"title": "e"}, headers={"Origin": origin})
        assert status == 403 and body["detail"].startswith("a request from another site")
        assert call(base, "POST", "/api/uploads", png(), headers={"Origin": origin})[0] == 403
    assert call(base, "GET", "/api/episodes")[1] == [] and not list(data.glob("uploads/*"))
    status, _ = call(base, "POST", "/api/episodes", {"title": "e"}, headers={"Origin": base})
    assert status == 201


def test_what_is_known_at_submission_is_refused_then(bare):
    base, _db, _data = bare
    episode = call(base, "POST", "/api/episodes", {"title": "e"})[1]
    panel, tall = (call(base, "POST", "/api/uploads", png(*size))[1]["name"] for size in [(96, 64), (64, 96)])
    shots = f"/api/episodes/{episode['id']}/shots"
    status, body = call(base, "POST", shots, {"panel": panel, "mask": tall})
    assert (status, body["detail"]) == (
        400,
        "mask is 64x96 but the panel is 96x64: draw the mask on the panel",
    )
    late = {"panel": panel, "seconds": 2.0, "keyframes": [{"at": 3.0, "image": tall}]}
    status, body = call(base, "POST", shots, late)
    assert (status, body["detail"]) == (400, "a keyframe at 3 s is after the shot's end (2 s)")
    assert call(base, "GET", f"/api/episodes/{episode['id']}")[1]["shots"] == []


@pytest.mark.parametrize(
    ("broken", "replacement", "error"),
    [
        ("panel", b"not an image any more", r"panel [0-9a-f]{32}\.png: not a readable image \(.*\)"),
        (
            "panel",
            flat_png(1600, 16),
            r"panel is 1600x16; its long side may be at most 4 times its short side",
        ),
        ("mask", png(64, 96), r"motion mask is 64x96 but the first guide image is 96x64 and the video .*"),
    ],
)
def test_broken_inputs_fail_the_job_before_it_is_dubbed(
    tmp_path, model, monkeypatch, broken, replacement, error
):
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    mask = service.save_upload(tmp_path, png())
    shot = stored_shot(db, tmp_path, mask=mask, lines=(service.LineIn("Hello."),))
    (tmp_path / "uploads" / shot[broken]).write_bytes(replacement)  # changed on disk after the submission
    dubbed = []
    monkeypatch.setattr(worker, "synthesize", lambda *args, **kwargs: dubbed.append(args))
    job_id = jobs.enqueue(db, shot["id"])
    Worker(db, tmp_path, model=str(model), steps=1).run_once()
    view = jobs.job_view(db, job_id)
    assert view["status"] == "failed" and re.fullmatch(error, view["error"]), view["error"]
    assert not dubbed


def test_a_dialogue_too_long_for_one_shot_fails_before_generating(tmp_path, model, monkeypatch):
    db = open_db(f"sqlite:///{tmp_path / 's.sqlite'}")
    job_id = jobs.enqueue(db, stored_shot(db, tmp_path, lines=(service.LineIn("Hello."),) * 2)["id"])
    seconds = service.MAX_DIALOGUE_S / 2
    silence = Speech(np.zeros(round(seconds * 16_000), np.float32), 16_000, {})
    monkeypatch.setattr(worker, "synthesize", lambda *args, **kwargs: silence)
    Worker(db, tmp_path, model=str(model), steps=1).run_once()
    view = jobs.job_view(db, job_id)
    assert (view["status"], view["error"]) == (
        "failed",
        "the dialogue lasts 121 s; at most 120 s per shot (split it across shots)",
    )
    assert not (tmp_path / "results").exists()


def test_the_missing_extra_is_named_with_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "anisora.studio.app")
    with pytest.raises(InputError) as error:
        importlib.import_module("anisora.studio.app")
    assert str(error.value) == (
        "the studio needs the project's studio extra: run `make install`"
        " (or `pip install -e '.[studio]'` in the AniSora-open checkout)"
    )


def test_what_the_studio_writes_has_normal_permissions(studio):
    base, _db, data = studio
    old = os.umask(0o022)
    try:
        shot = make_shot(base, [{"text": "Hi."}], seconds=2.0)
        done = wait_for(
            base, call(base, "POST", f"/api/shots/{shot['id']}/jobs")[1]["id"], {"done", "failed"}
        )
        assert done["status"] == "done", done.get("error")
        assert call(base, "POST", f"/api/episodes/{shot['episode_id']}/render")[0] == 200
    finally:
        os.umask(old)
    written = [p for p in data.rglob("*") if p.is_file() and not p.name.startswith("studio.sqlite")]
    assert {p.suffix for p in written} >= {".png", ".mp4", ".wav", ".srt"}
    assert {p.relative_to(data).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in written} == {
        p.relative_to(data).as_posix(): 0o644 for p in written
    }


def multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts += [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{k}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
        for k, data in files.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_the_openai_style_video_api_creates_polls_fetches_and_deletes(studio):
    base, _db, data = studio
    body, kind = multipart(
        {"prompt": "a girl waves", "seconds": "2", "model": "sora-2"}, {"input_reference": png()}
    )
    request = urllib.request.Request(
        base + "/v1/videos", data=body, headers={"Content-Type": kind}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        video = json.loads(response.read())
    assert (
        video["object"] == "video"
        and video["id"].startswith("video_")
        and video["status"] in ("queued", "in_progress")
    )
    assert video["prompt"] == "a girl waves" and video["seconds"] == 2.0
    # JSON with the image as a data: URL, and a last frame given as an earlier upload's name
    upload = call(base, "POST", "/api/uploads", png(seed=1))[1]["name"]
    encoded = "data:image/png;base64," + base64.b64encode(png(seed=2)).decode()
    status, second = call(
        base, "POST", "/v1/videos", {"input_reference": encoded, "last_frame": upload, "seed": 3}
    )
    assert status == 200 and second["id"] != video["id"]
    deadline = time.monotonic() + 300  # a hang guard only
    while (polled := call(base, "GET", f"/v1/videos/{video['id']}")[1])["status"] not in (
        "completed",
        "failed",
    ):
        assert 0 <= polled["progress"] <= 100 and time.monotonic() < deadline
        time.sleep(0.1)
    assert polled["status"] == "completed" and polled["progress"] == 100, polled
    status, mp4 = call(base, "GET", f"/v1/videos/{video['id']}/content")
    assert status == 200 and mp4[4:8] == b"ftyp"
    listed = call(base, "GET", "/v1/videos")[1]
    assert listed["object"] == "list" and [v["id"] for v in listed["data"]] == [video["id"], second["id"]]
    status, deleted = call(base, "DELETE", f"/v1/videos/{video['id']}")
    assert status == 200 and deleted == {"id": video["id"], "object": "video", "deleted": True}
    assert call(base, "GET", f"/v1/videos/{video['id']}/content")[0] == 404  # its file is gone
    # the page's own shots are not videos of this API; bad input is one line, before anything is stored
    shot = stored_shot(_db, data)
    job = jobs.enqueue(_db, shot["id"])
    assert call(base, "GET", f"/v1/videos/video_{job}")[0] == 404
    assert call(base, "GET", "/v1/videos/../../etc/passwd")[0] == 404
    uploads = len(list((data / "uploads").iterdir()))
    for bad, message in (
        ({"prompt": "no image"}, "input_reference"),
        ({"input_reference": encoded, "seconds": "forever"}, "seconds must be a number"),
        ({"input_reference": encoded, "seconds": 999}, "duration must be"),
        ({"input_reference": encoded, "colour": "red"}, "unknown field"),
        ({"input_reference": "data:image/png;base64,@@@"}, "not valid base64"),
    ):
        status, error = call(base, "POST", "/v1/videos", bad)
        assert status == 400 and message in error["detail"], (bad, error)
    assert len(list((data / "uploads").iterdir())) == uploads
    schema = call(base, "GET", "/openapi.json")[1]
    assert {"/v1/videos", "/v1/videos/{video_id}", "/v1/videos/{video_id}/content"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/v1/videos"]["post"]["requestBody"]["content"]
