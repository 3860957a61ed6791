"""The studio page in Debian Chromium, against a real server and a real worker on a tiny random model: the
whole flow from an empty studio to a finished, dubbed shot and a rendered episode; and hostile text, which the
page must show literally."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
CHINESE = "你好，我们走吧。"
ENGLISH = "Let's go, the train is leaving."
HOSTILE = "<img src=x onerror=alert(1)>"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} is not installed (Debian chromium)"
)


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """A studio on loopback: SQLite in tmp, uvicorn in a thread, one worker thread with a tiny model."""
    pytest.importorskip("playwright.sync_api")
    uvicorn = pytest.importorskip("uvicorn")
    from anisora.model.pipeline import AnisoraPipeline
    from anisora.model.presets import build_components
    from anisora.studio.app import create_app
    from anisora.studio.db import open_db
    from anisora.studio.worker import Worker

    root = tmp_path_factory.mktemp("studio")
    AnisoraPipeline(**build_components("tiny", "anisora")).save_pretrained(root / "model")
    data = root / "data"
    data.mkdir()
    db = open_db(f"sqlite:///{data / 'studio.sqlite'}")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(db, data, token=None), log_level="warning"))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    serving.start()
    stop = threading.Event()
    worker = Worker(db, data, model=str(root / "model"), steps=2)
    working = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    working.start()
    deadline = time.monotonic() + 120  # a hang guard only
    while not server.started:
        assert time.monotonic() < deadline and serving.is_alive(), "the server did not start"
        time.sleep(0.02)

    def stop_worker() -> None:
        stop.set()
        working.join(30)

    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield SimpleNamespace(base=base, db=db, data=data, stop_worker=stop_worker)
    finally:
        stop_worker()
        server.should_exit = True
        serving.join(10)
        sock.close()


@pytest.fixture(scope="module")
def browser(studio):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


def panel_png(path: Path, width: int = 128, height: int = 96) -> Path:
    """A small comic-ish panel: a gradient sky, a ground band and a face-like disc."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = 90 + 100 * y // height
    rgb[..., 1] = 140 + 60 * x // width
    rgb[..., 2] = 230
    rgb[y > height * 0.7] = (70, 150, 80)
    face = (x - width * 0.7) ** 2 + (y - height * 0.45) ** 2 < (height * 0.2) ** 2
    rgb[face] = (250, 215, 180)
    Image.fromarray(rgb).save(path)
    return path


RECORD_STATES = """() => {
    window.seenStates = [];
    const list = document.getElementById('shot-list');
    new MutationObserver(() => {
        for (const card of list.querySelectorAll('.shot')) {
            const row = card.querySelector('.progress-row');
            const visible = row && !row.hidden && row.getBoundingClientRect().height > 0;
            const stage = visible ? card.querySelector('.stage').textContent : null;
            window.seenStates.push([card.dataset.status, stage]);
        }
    }).observe(list, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def media_ready(selector: str, ready_state: int = 1) -> str:
    """JS: the video has at least `ready_state` (1: HAVE_METADATA, 4: HAVE_ENOUGH_DATA)."""
    video = f"document.querySelector({selector!r})"
    return f"() => {{ const v = {video}; return !!v && v.readyState >= {ready_state}; }}"


def assert_downloads(page, base: str, links: str, srt_has: str) -> None:
    hrefs = [page.locator(f"{links} a").nth(i).get_attribute("href") for i in range(2)]
    for href in hrefs:
        response = page.request.get(base + href)
        assert response.status == 200, href
        if ".srt" in href or "/srt" in href:
            assert srt_has in response.text()
        else:
            assert response.headers["content-type"] == "video/mp4" and response.body()[4:8] == b"ftyp"


def test_whole_flow(studio, page, tmp_path):
    from playwright.sync_api import expect

    page.goto(studio.base + "/")
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#shots-empty")).to_have_text("Create an episode to start.")

    # an episode, a Mandarin character
    page.fill("#episode-title", "第一集 · the station")
    page.click("#episode-form button")
    expect(page.locator("#episode-name")).to_have_text("Shots · 第一集 · the station")
    page.click("#new-character-toggle")
    page.fill("#char-name", "小明")
    page.select_option("#char-engine", "espeak-ng")
    page.select_option("#char-voice", "cmn")
    page.click("#char-create")
    expect(page.locator("#characters .character-chip")).to_have_text("小明espeak-ng · cmn")

    # the panel, then a horizontal stroke on the mask: 400x300 on screen for a 128x96 panel (x3.125)
    page.set_input_files("#panel-file", str(panel_png(tmp_path / "panel.png")))
    page.wait_for_selector("#stage[data-panel]")
    page.fill("#brush-size", "20")
    box = page.locator("#overlay").bounding_box()
    assert (round(box["width"]), round(box["height"])) == (400, 300)
    page.mouse.move(box["x"] + 100, box["y"] + 150)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + 150, steps=10)
    page.mouse.up()

    page.get_by_role("button", name="hair sways in the wind").click()
    expect(page.get_by_role("button", name="hair sways in the wind")).to_have_attribute(
        "aria-pressed", "true"
    )
    page.fill("#prompt", "a boy at a train station waves goodbye")
    page.uncheck("#motion-auto")
    page.fill("#motion", "12")
    expect(page.locator("#motion-out")).to_have_text("12.0")
    expect(page.locator("#duration-fit")).to_be_checked()

    # one extra keyframe at 1.0 s: uploaded as soon as it is chosen, shown as a thumbnail
    expect(page.locator("#keyframes-hint")).to_be_visible()
    page.click("#add-keyframe")
    keyframe = page.locator("#keyframes .keyframe")
    expect(keyframe).to_have_count(1)
    expect(keyframe.locator(".keyframe-thumb")).to_be_hidden()
    keyframe.locator(".keyframe-file").set_input_files(str(panel_png(tmp_path / "keyframe.png", 96, 128)))
    expect(keyframe.locator(".keyframe-thumb")).to_be_visible()
    page.wait_for_function("document.querySelector('.keyframe-thumb').naturalHeight === 128")
    expect(keyframe).to_have_attribute("data-image", re.compile(r".+"))
    keyframe.locator(".keyframe-at").fill("1.0")
    expect(page.locator("#keyframes-hint")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "studio-keyframes.png"))

    # two dialogue lines: Mandarin (happy, 小明) and English (the narrator's default voice)
    for who, emotion, text in (("小明", "happy", CHINESE), ("Narrator (default)", "neutral", ENGLISH)):
        page.click("#add-line")
        row = page.locator("#lines .line").last
        row.locator(".line-character").select_option(label=who)
        row.locator(".line-emotion").select_option(emotion)
        row.locator(".line-text").fill(text)

    page.evaluate(RECORD_STATES)
    page.click("#submit")
    card = page.locator("#shot-list .shot").first
    expect(card).to_have_attribute("data-status", "done", timeout=300_000)
    seen = page.evaluate("window.seenStates")
    assert any(status in ("queued", "running") and stage and stage.endswith("%") for status, stage in seen), (
        seen
    )
    expect(card.locator(".status")).to_have_text("done")
    expect(card.locator(".error")).to_be_hidden()
    assert card.locator(".actions button").all_text_contents() == ["New take"]

    # the preview plays, both downloads work, the Chinese line is on the page as text
    page.wait_for_function(media_ready(".shot[data-status=done] video"), timeout=120_000)
    page.wait_for_function(media_ready(".shot[data-status=done] video", 4))  # no spinner
    assert_downloads(page, studio.base, ".shot .downloads", CHINESE)
    expect(card.locator(".line-text").first).to_have_text(CHINESE)
    expect(card.locator(".line-text").nth(1)).to_have_text(ENGLISH)
    expect(card.locator(".who").first).to_have_text("小明")
    expect(card.locator(".emotion").first).to_have_text("happy")
    expect(card.locator(".keyframes")).to_have_text("keyframes: 1.0 s")
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(2500)  # Chromium's media controls fade their loading spinner out late
    page.screenshot(path=str(tmp_path / "studio-finished.png"))

    # what was stored: the shot's fields and the mask, white only where the stroke went
    from anisora.studio import service

    episode = service.get_episode(studio.db, service.list_episodes(studio.db)[-1]["id"])
    shot = episode["shots"][0]
    assert shot["presets"] == ["hair sways in the wind"] and shot["motion"] == 12 and shot["seconds"] is None
    assert [(line["text"], line["emotion"]) for line in shot["lines"]] == [
        (CHINESE, "happy"),
        (ENGLISH, "neutral"),
    ]
    assert shot["lines"][1]["character_id"] is None
    assert [k["at"] for k in shot["keyframes"]] == [1.0]
    stored = Image.open(service.upload_path(studio.data, shot["keyframes"][0]["image"]))
    assert stored.size == (96, 128)
    guided = shot["job"]["result"]["guide_frames"]  # per part: frame 0, plus the keyframe's frame in its part
    assert sum(len(frames) for frames in guided) == len(guided) + 1 and guided[0][0] == 0, guided
    mask = np.asarray(Image.open(service.upload_path(studio.data, shot["mask"])).convert("L"))
    assert mask.shape == (96, 128)
    # the stroke: y = 48, x = 32..64 in panel pixels, 6.4 px wide
    assert (mask[46:51, 32:65] > 200).all()
    outside = np.ones_like(mask, bool)
    outside[43:54, 27:70] = False
    assert mask[outside].max() == 0 and 100 < (mask > 127).sum() < 600

    # the episode: render, play, download
    page.click("#render-episode")
    expect(page.locator("#episode-output")).to_be_visible(timeout=120_000)
    page.wait_for_function(media_ready("#episode-video"), timeout=120_000)
    assert_downloads(page, studio.base, "#episode-output .downloads", CHINESE)
    assert page.evaluate("document.getElementById('episode-video').duration") > 1.5
    expect(page.locator("#message")).to_have_class("info")
    assert not page.errors


def test_hostile_text_is_shown_literally(studio, page, tmp_path):
    from playwright.sync_api import expect

    from anisora.studio import service

    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    who = service.create_character(studio.db, service.CharacterIn(name=HOSTILE))
    episode = service.create_episode(studio.db, HOSTILE)
    panel = service.save_upload(studio.data, panel_png(tmp_path / "panel.png").read_bytes())
    line = service.LineIn(text=HOSTILE, character_id=who["id"])
    service.create_shot(studio.db, studio.data, episode["id"], service.ShotIn(panel, HOSTILE, lines=(line,)))

    page.goto(f"{studio.base}/#episode={episode['id']}")
    card = page.locator("#shot-list .shot").first
    expect(card.locator(".line-text")).to_have_text(HOSTILE)
    expect(card.locator(".who")).to_have_text(HOSTILE)
    expect(card.locator(".prompt")).to_have_text(HOSTILE)
    expect(card.locator(".status")).to_have_text("not queued")
    expect(page.locator("#episode-name")).to_have_text(f"Shots · {HOSTILE}")
    expect(page.locator("#characters")).to_contain_text(HOSTILE)

    # an API error, with hostile text in the upload, lands in the message area as text
    bad = tmp_path / "bad.png"
    bad.write_text(HOSTILE)
    page.set_input_files("#panel-file", str(bad))
    expect(page.locator("#message.error")).to_contain_text("not a readable image")

    assert page.locator("img[src=x], img[src$='/x']").count() == 0
    assert not dialogs and not page.errors


def test_job_buttons_follow_the_status(studio, page, tmp_path):
    from playwright.sync_api import expect

    from anisora.studio import jobs, service

    studio.stop_worker()  # the job stays in the queue, so every transition is the page's doing
    episode = service.create_episode(studio.db, "controls")
    panel = service.save_upload(studio.data, panel_png(tmp_path / "panel.png").read_bytes())
    shot = service.create_shot(studio.db, studio.data, episode["id"], service.ShotIn(panel, "a wave"))
    job = jobs.enqueue(studio.db, shot["id"])

    page.goto(f"{studio.base}/#episode={episode['id']}")
    card = page.locator("#shot-list .shot").first
    steps = [
        ("queued", ["Pause", "Cancel"], "Pause"),
        ("paused", ["Resume", "Cancel"], "Resume"),
        ("queued", ["Pause", "Cancel"], "Cancel"),
        ("cancelled", ["Retry"], "Retry"),
        ("queued", ["Pause", "Cancel"], None),
    ]
    for status, buttons, press in steps:
        expect(card).to_have_attribute("data-status", status)
        expect(card.locator(".actions button")).to_have_text(buttons)
        if status != "cancelled":
            expect(card.locator(".progress-row")).to_be_visible()
        assert jobs.job_view(studio.db, job)["status"] == status
        if press:
            card.get_by_role("button", name=press).click()
    # a transition the queue refuses (another client cancelled the job first) comes back as the API's message
    page.evaluate(
        """async (job) => {
            const pause = document.querySelector('.shot [data-action=pause]');
            await fetch(`/api/jobs/${job}/cancel`, {method: 'POST'});
            pause.click();
        }""",
        job,
    )
    expect(page.locator("#message.error")).to_contain_text(f"job {job} is cancelled")
    assert not page.errors


def test_api_docs_render_with_the_network_off(studio, browser):
    """/docs and /redoc load their Swagger UI and ReDoc files from the studio itself: with every other
    address blocked they still render the API."""
    context = browser.new_context()
    blocked = []

    def only_the_studio(route) -> None:
        if route.request.url.startswith(studio.base):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_studio)
    page = context.new_page()
    page.goto(studio.base + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)  # Swagger UI drew the operations
    assert "/api/episodes" in page.inner_text("body")
    page.goto(studio.base + "/redoc")
    page.wait_for_selector("h1", timeout=30_000)
    assert "anisora studio" in page.inner_text("body")
    # only decorations may come from elsewhere (ReDoc's "powered by" logo); no script or style sheet
    assert not [url for url in blocked if url.split("?")[0].endswith((".js", ".css"))]
    context.close()
