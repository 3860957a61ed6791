"""anisora.evaluate.rating and rating_app: pairing, blinding, votes, win rates, the HTTP API and the page.

Three fake runs whose videos are solid colours (one colour per system), so a served video tells which
system it came from. The HTTP tests use a real uvicorn server in a thread (no httpx needed).
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import sqlite3
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from anisora.errors import InputError
from anisora.evaluate.cases import write_bench
from anisora.evaluate.rating import (
    Z_95,
    DuplicateVoteError,
    Item,
    NotInvitedError,
    RatingSession,
    RatingStore,
    UnknownTokenError,
    format_win_rates,
    load_rated_run,
    wilson_interval,
    win_rates,
)
from anisora.media import read_frames, save_image, write_video

CHROMIUM = Path("/usr/bin/chromium")
VIDEOS_READY = (
    "() => [...document.querySelectorAll('video')].every(v => v.readyState >= 2 && v.videoWidth > 0)"
)
COLOURS = {"sys-red": (220, 40, 40), "sys-green": (40, 200, 60), "sys-blue": (40, 80, 230)}
CASES = {
    "i2v-walking-01": ("i2v", "walking", "a girl in a red coat walks along a rainy street"),
    "t2v-running-02": ("t2v", "running", "a boy runs across a sunny field, camera tracking"),
    "interpolation-jump-03": ("interpolation", "jumping", "a cat jumps from the sofa onto the table"),
}
MISSING = {"sys-blue": "interpolation-jump-03"}  # blue has no video of this case: 3 + 3 + 1 items
N_ITEMS = 7


def make_bench(root: Path) -> Path:
    """The runs' bench: the guided cases have an input image (the rating page shows it)."""
    bench = root / "bench.yaml"
    if not bench.is_file():
        save_image(root / "first.png", np.full((48, 64, 3), 200, np.uint8))
        cases = [
            {"id": case, "prompt": prompt, "task": task}
            | ({"guides": [{"frame": 0, "image": "first.png"}]} if task != "t2v" else {})
            for case, (task, _label, prompt) in CASES.items()
        ]
        write_bench(bench, "rating-test", cases)
    return bench


def make_run(root: Path, name: str, dirname: str | None = None, results: bool = True) -> Path:
    run_dir = root / (dirname or name)
    (run_dir / "videos").mkdir(parents=True)
    run = {"name": name, "kind": "benchmark", "bench": str(make_bench(root))}
    (run_dir / "run.json").write_text(json.dumps(run))
    frames = np.broadcast_to(np.array(COLOURS.get(name, (128, 128, 128)), np.uint8), (9, 48, 64, 3))
    records = []
    for case, (task, label, prompt) in CASES.items():
        if MISSING.get(name) == case:
            continue
        # evaluate runs store exact RGB frames; the page must still get videos a browser plays
        write_video(run_dir / "videos" / f"{case}.mp4", frames, fps=8, lossless=True)
        records.append({"case": case, "task": task, "label": label, "prompt": prompt})
    if results:
        (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [make_run(root, name) for name in COLOURS]


def make_session(runs: list[Path], db: Path, seed: int = 0) -> RatingSession:
    return RatingSession(runs, RatingStore(db), rng=random.Random(seed))


def item_of(store: RatingStore, token: str) -> Item:
    assignment = store.assignment(token)
    return Item(assignment.case, *sorted((assignment.left, assignment.right)))


def colour_name(video: Path) -> str:
    """Which system made this video, from its (solid) colour."""
    mean = read_frames(video, [0]).reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda name: np.abs(mean - COLOURS[name]).sum())


# --- pairing and blinding


def test_items_are_cases_both_runs_have(runs, tmp_path):
    session = make_session(runs, tmp_path / "votes.sqlite")
    assert len(session.items) == N_ITEMS
    assert Item("interpolation-jump-03", "sys-green", "sys-red") in session.items
    assert not any(item.case == "interpolation-jump-03" and "sys-blue" in item[1:] for item in session.items)
    assert all(item.a < item.b for item in session.items)


def test_every_item_once_per_rater_then_none(runs, tmp_path):
    session = make_session(runs, tmp_path / "votes.sqlite")
    seen = []
    while (pair := session.next_pair("ana")) is not None:
        seen.append(item_of(session.store, pair["token"]))
        session.vote(pair["token"], "tie", "ana")
        assert len(seen) <= N_ITEMS
    assert sorted(seen) == sorted(session.items)
    assert session.progress("ana") == (N_ITEMS, N_ITEMS)
    assert session.progress("bo") == (0, N_ITEMS)
    assert session.next_pair("bo") is not None


def test_next_pair_prefers_items_with_fewest_votes(runs, tmp_path):
    session = make_session(runs, tmp_path / "votes.sqlite")
    voted = set()
    for _ in range(3):
        pair = session.next_pair("ana")
        voted.add(item_of(session.store, pair["token"]))
        session.vote(pair["token"], "left", "ana")
    for seed in range(20):  # whatever the tie-breaking, bo first gets an item nobody has voted on
        session.rng = random.Random(seed)
        assert item_of(session.store, session.next_pair("bo")["token"]) not in voted


def test_sides_are_randomised(runs, tmp_path):
    session = make_session(runs, tmp_path / "votes.sqlite")
    orders = Counter()
    for _ in range(200):
        assignment = session.store.assignment(session.next_pair("ana")["token"])
        orders[assignment.left < assignment.right] += 1
    assert 60 < orders[True] < 140 and orders[True] + orders[False] == 200


def test_next_pair_names_no_model(runs, tmp_path):
    session = make_session(runs, tmp_path / "votes.sqlite")
    pair = session.next_pair("ana")
    assert set(pair) == {"token", "case", "prompt", "task", "label", "image"}
    assert pair["prompt"] == CASES[pair["case"]][2]
    assert pair["image"] == (CASES[pair["case"]][0] != "t2v")
    text = json.dumps(pair)
    for run in session.runs.values():
        assert run.name not in text and str(run.dir) not in text and run.dir.name not in text


def test_votes_rejected(runs, tmp_path):
    session = make_session(runs, tmp_path / "votes.sqlite")
    pair = session.next_pair("ana")
    with pytest.raises(UnknownTokenError):
        session.vote("no-such-token", "left", "ana")
    with pytest.raises(InputError, match="another rater"):
        session.vote(pair["token"], "left", "bo")
    with pytest.raises(InputError, match="choice"):
        session.vote(pair["token"], "A", "ana")
    session.vote(pair["token"], "left", "ana")
    with pytest.raises(DuplicateVoteError):
        session.vote(pair["token"], "right", "ana")
    # the same item again through a second token (a second tab) is a second vote too
    item = item_of(session.store, pair["token"])
    token = session.store.assign(item.case, None, item.b, item.a, "ana")
    with pytest.raises(DuplicateVoteError):
        session.vote(token, "tie", "ana")
    assert len(session.store.votes()) == 1
    assert issubclass(UnknownTokenError, InputError) and issubclass(DuplicateVoteError, InputError)


def test_a_rater_is_an_invitation_or_the_local_rater(runs, tmp_path):
    session = make_session(runs, tmp_path / "votes.sqlite")
    first, second = session.store.invite(2)
    (third,) = session.store.invite(1)
    assert len({first, second, third}) == 3 and min(map(len, (first, second, third))) >= 20
    assert [session.rater(token, local=False) for token in (first, second, third)] == [
        "rater-1",
        "rater-2",
        "rater-3",
    ]
    assert session.rater(first, local=True) == "rater-1" and session.rater(None, local=True) == "local"
    for invite, local in ((None, False), ("", False), ("forged", False), ("forged", True)):
        with pytest.raises(NotInvitedError, match="invitation"):
            session.rater(invite, local)
    with pytest.raises(InputError, match="at least one"):
        session.store.invite(0)


def test_run_names_must_be_distinct(runs, tmp_path):
    twin = make_run(tmp_path, "sys-red", dirname="red-again")
    with pytest.raises(InputError, match="--name"):
        make_session([runs[0], twin], tmp_path / "votes.sqlite")
    with pytest.raises(InputError, match="at least two"):
        make_session(runs[:1], tmp_path / "votes.sqlite")
    # a name bound to one directory in a database cannot later mean another one
    make_session(runs[:2], tmp_path / "votes.sqlite")
    with pytest.raises(InputError, match="already used"):
        make_session([twin, runs[1]], tmp_path / "votes.sqlite")


def test_run_metadata(runs, tmp_path):
    bare = load_rated_run(make_run(tmp_path, "sys-plain", results=False))
    assert sorted(bare.cases) == sorted(CASES)
    assert bare.cases["t2v-running-02"].prompt is None and bare.cases["t2v-running-02"].task is None
    # the prompt comes from whichever run has one
    session = make_session([runs[0], tmp_path / "sys-plain"], tmp_path / "votes.sqlite")
    assert session.cases["t2v-running-02"].prompt == CASES["t2v-running-02"][2]
    other = make_run(tmp_path, "sys-other")
    lines = (other / "results.jsonl").read_text().replace("a boy runs", "a dog runs")
    (other / "results.jsonl").write_text(lines)
    with pytest.raises(InputError, match="different prompt"):
        make_session([runs[0], other], tmp_path / "votes2.sqlite")
    with pytest.raises(InputError, match="not a run directory"):
        load_rated_run(tmp_path / "nowhere")


# --- statistics


def test_wilson_interval_known_answer():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    # the formula itself, at another point
    n, p, z = 37, 21.5 / 37, Z_95
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert wilson_interval(21.5, 37) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(0, 5)[0] == 0 and wilson_interval(5, 5)[1] == 1
    assert wilson_interval(0, 0) == (0.0, 1.0)


def cast_votes(store: RatingStore, votes: list[tuple[str, str, str, str, str]]) -> None:
    """(task, left, right, choice, rater), one case per vote."""
    for i, (task, left, right, choice, rater) in enumerate(votes):
        store.vote(store.assign(f"case-{i}", task, left, right, rater), choice, rater)


def test_win_rates_ties_count_half_and_split_by_task(tmp_path):
    store = RatingStore(tmp_path / "votes.sqlite")
    cast_votes(
        store,
        [
            ("i2v", "red", "blue", "left", "ana"),  # red wins
            ("i2v", "blue", "red", "right", "ana"),  # red wins, sides swapped
            ("i2v", "blue", "red", "left", "bo"),  # blue wins
            ("t2v", "red", "blue", "tie", "bo"),
            ("t2v", "red", "green", "right", "ana"),  # green wins
        ],
    )
    rates = {(r.a, r.b, r.task): r for r in win_rates(store)}
    assert list(rates) == [
        ("blue", "red", None),
        ("blue", "red", "i2v"),
        ("blue", "red", "t2v"),
        ("green", "red", None),
        ("green", "red", "t2v"),
    ]
    overall = rates["blue", "red", None]
    assert (overall.n, overall.wins_a, overall.wins_b, overall.ties, overall.raters) == (4, 1, 2, 1, 2)
    assert overall.rate == pytest.approx((1 + 0.5) / 4)
    assert overall.interval == pytest.approx(wilson_interval(1.5, 4))
    assert (rates["blue", "red", "i2v"].wins_a, rates["blue", "red", "i2v"].wins_b) == (1, 2)
    assert rates["blue", "red", "t2v"].rate == 0.5
    assert rates["green", "red", None].rate == 1.0
    table = format_win_rates(win_rates(store))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["model", "A", "model"] and "95% CI" in lines[0]
    assert lines[1].split() == ["blue", "red", "all", "4", "2", "1", "2", "1", "0.375", "[0.092,", "0.781]"]
    assert "Wilson" in table
    assert format_win_rates([]) == "no votes yet"


def test_store_needs_a_database(tmp_path):
    with pytest.raises(InputError, match="no such ratings database"):
        RatingStore(tmp_path / "missing.sqlite", create=False)
    (tmp_path / "notes.txt").write_text("not sqlite " * 100)
    with pytest.raises(InputError, match="not a ratings database"):
        RatingStore(tmp_path / "notes.txt", create=False)


# --- the HTTP API, on a real server


def request(
    url: str, body: dict | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw_get(base: str, path: str) -> int:
    """GET a path exactly as written (no client-side normalisation of ../)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert b"root:" not in body
    return response.status


@pytest.fixture
def served(runs, tmp_path, live_server):
    from anisora.evaluate.rating_app import create_app

    session = make_session(runs, tmp_path / "votes.sqlite")
    with live_server(create_app(session)) as base:
        yield session, base


def test_api_pairs_videos_votes(served, tmp_path):
    session, base = served
    status, headers, page = request(base + "/")
    assert (
        status == 200
        and b"A is better" in page
        and "default-src 'none'" in headers["content-security-policy"]
    )

    status, _, body = request(base + "/api/next")
    pair = json.loads(body)["pair"]
    assert status == 200 and set(pair) == {"token", "case", "prompt", "task", "label", "image"}
    assignment = session.store.assignment(pair["token"])
    status, headers, image = request(f"{base}/api/image/{pair['token']}")
    if pair["image"]:
        assert (
            status == 200 and image == (Path(session.runs["sys-red"].dir).parent / "first.png").read_bytes()
        )
    else:
        assert status == 404
    assert request(f"{base}/api/image/nope")[0] == 404
    for side in ("left", "right"):
        status, headers, video = request(f"{base}/api/video/{pair['token']}/{side}")
        assert status == 200 and headers["content-type"] == "video/mp4"
        assert "sys-" not in headers.get("content-disposition", "")
        (tmp_path / f"{side}.mp4").write_bytes(video)
        assert colour_name(tmp_path / f"{side}.mp4") == getattr(assignment, side)
        with av.open(str(tmp_path / f"{side}.mp4")) as served:
            assert served.streams.video[0].codec_context.pix_fmt == "yuv420p"

    vote = {"token": pair["token"], "choice": "right"}  # from this machine, without an invitation
    assert request(base + "/api/vote", vote)[0] == 200
    assert request(base + "/api/vote", vote)[0] == 409
    assert request(base + "/api/vote", {**vote, "token": "nope"})[0] == 404
    assert request(base + "/api/vote", {**vote, "choice": "both"})[0] == 422
    progress = {"done": 1, "total": N_ITEMS, "rater": "local"}
    assert json.loads(request(base + "/api/progress")[2]) == progress
    assert [(v.choice, v.rater) for v in session.store.votes()] == [("right", "local")]


def test_api_video_404s(served):
    session, base = served
    token = session.next_pair("ana")["token"]
    assert raw_get(base, f"/api/video/{token}/left") == 200
    for path in (
        "/api/video/nope/left",
        f"/api/video/{token}/middle",
        f"/api/video/{token}/../left",
        "/api/video/../../etc/passwd",
        "/api/video/..%2F..%2Fetc%2Fpasswd/left",
        f"/api/video/{token}/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/video/%2Fetc%2Fpasswd/left",
    ):
        assert raw_get(base, path) == 404, path


REMOTE = {"X-Forwarded-For": "203.0.113.9"}  # uvicorn takes a loopback proxy's word for the client


def test_videos_and_images_carry_nothing_that_names_the_run(served):
    session, base = served
    pair = session.next_pair("ana")
    paths = [f"/api/video/{pair['token']}/{side}" for side in ("left", "right")]
    paths += [f"/api/image/{pair['token']}"] if pair["image"] else []
    for path in paths:
        status, headers, _ = request(base + path)
        names = {name.lower() for name in headers}
        assert status == 200 and not names & {"last-modified", "etag", "content-disposition"}, headers


def test_off_loopback_a_vote_needs_an_invitation(served):
    session, base = served
    ana, bo = session.store.invite(2)
    assert request(base + "/api/next", headers=REMOTE)[0] == 403
    assert request(base + "/api/next?rater=mallory", headers=REMOTE)[0] == 403
    assert request(base + "/api/next?invite=forged", headers=REMOTE)[0] == 403
    status, _, body = request(f"{base}/api/next?invite={ana}", headers=REMOTE)
    token = json.loads(body)["pair"]["token"]
    assert status == 200
    assert request(base + "/api/vote", {"token": token, "choice": "left"}, REMOTE)[0] == 403
    assert request(base + "/api/vote", {"token": token, "choice": "left", "invite": bo}, REMOTE)[0] == 400
    assert request(base + "/api/vote", {"token": token, "choice": "left", "invite": ana}, REMOTE)[0] == 200
    progress = json.loads(request(f"{base}/api/progress?invite={ana}", headers=REMOTE)[2])
    assert progress == {"done": 1, "total": N_ITEMS, "rater": "rater-1"}


def test_invented_raters_count_as_the_one_rater_they_are(served):
    """Ten made-up names through one invitation, or through none on this machine, are one rater each."""
    session, base = served
    (invite,) = session.store.invite(1)
    for query, headers in ((f"invite={invite}", REMOTE), ("", {})):
        for name in (f"fake-{i}" for i in range(10)):
            pair = json.loads(request(f"{base}/api/next?{query}&rater={name}", headers=headers)[2])["pair"]
            if pair is None:
                break
            vote = {
                "token": pair["token"],
                "choice": "left",
                "rater": name,
                "invite": invite if query else None,
            }
            assert request(base + "/api/vote", vote, headers)[0] == 200
    votes = session.store.votes()
    assert {v.rater for v in votes} == {"rater-1", "local"}
    assert Counter(v.rater for v in votes) == {"rater-1": 7, "local": 7}  # each item once per rater
    assert {r.raters for r in win_rates(session.store)} == {2}  # twenty names, two raters


def test_cli_rate_invites_raters(runs, tmp_path, capsys, monkeypatch):
    import uvicorn

    from anisora.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    db = tmp_path / "votes.sqlite"
    args = ["evaluate", "rate", *map(str, runs[:2]), "--db", str(db), "--port", "9000"]
    assert main([*args, "--invite", "3"]) == 0
    links = [line for line in capsys.readouterr().out.splitlines() if "?invite=" in line]
    assert len(links) == 3 and all(line.startswith("http://127.0.0.1:9000/?invite=") for line in links)
    store = RatingStore(db)
    assert [store.invited_rater(line.split("=", 1)[1]) for line in links] == ["rater-1", "rater-2", "rater-3"]
    assert main([*args, "--invite", "1", "--host", "0.0.0.0"]) == 0  # more invitations later: numbered on
    (link,) = [line for line in capsys.readouterr().out.splitlines() if "?invite=" in line]
    assert link.startswith(f"http://{socket.gethostname()}:9000/?invite=")  # an address others can open
    assert store.invited_rater(link.split("=", 1)[1]) == "rater-4"


def test_missing_web_extra_says_how_to_install_it(runs, tmp_path, monkeypatch):
    import sys

    from anisora.evaluate.rating_app import serve

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(InputError, match=r"make install.*pip install -e '\.\[web\]'") as caught:
        serve(runs, tmp_path / "votes.sqlite")
    assert "anisora[web]" not in str(caught.value)


# --- the page, in headless Chromium


def test_page_in_chromium(runs, tmp_path, live_server):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    from anisora.evaluate.rating_app import create_app

    session = make_session(runs, tmp_path / "votes.sqlite")
    (invite,) = session.store.invite(1)
    # by button, then by each key binding
    actions = [("click", "A is better", "left"), ("click", "Tie", "tie"), ("click", "B is better", "right")]
    actions += [
        ("key", "1", "left"),
        ("key", "ArrowDown", "tie"),
        ("key", "3", "right"),
        ("key", "ArrowLeft", "left"),
    ]
    errors = []
    with live_server(create_app(session)) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(f"{base}/?invite={invite}")
        assert page.url == base + "/"  # the invitation leaves the address bar (kept in the browser)
        page.click("#start")
        for done, (how, what, _) in enumerate(actions):
            page.wait_for_function(
                "n => document.getElementById('progress').textContent === `${n} of 7 done`", arg=done
            )
            page.wait_for_function(VIDEOS_READY)
            page.wait_for_selector("button[data-choice=left]:enabled")
            if done == 0:
                page.screenshot(path=str(tmp_path / "rating-page.png"))
                # the page shows each side's own video: A is the assignment's left run
                token = page.evaluate("() => pair.token")
                assignment = session.store.assignment(token)
                shown = page.evaluate(
                    """() => [...document.querySelectorAll('video')].map(v => {
                        const c = document.createElement('canvas');
                        c.width = v.videoWidth; c.height = v.videoHeight;
                        const ctx = c.getContext('2d');
                        ctx.drawImage(v, 0, 0);
                        return [...ctx.getImageData(c.width / 2, c.height / 2, 1, 1).data.slice(0, 3)];
                    })"""
                )
                for side, rgb in zip(("left", "right"), shown, strict=True):
                    assert np.abs(np.array(rgb) - COLOURS[getattr(assignment, side)]).max() < 30
                assert page.text_content("#prompt") in [prompt for _, _, prompt in CASES.values()]
            if how == "click":
                page.get_by_role("button", name=what, exact=False).click()
            else:
                page.keyboard.press(what)
        page.wait_for_selector("#finished", state="visible")
        assert page.text_content("#progress") == "7 of 7 done"
        assert page.text_content("#rater-name") == "rater-1"
        page.screenshot(path=str(tmp_path / "rating-finished.png"))
        browser.close()
    assert not errors
    with sqlite3.connect(tmp_path / "votes.sqlite") as db:
        rows = db.execute("SELECT rater, choice FROM votes ORDER BY rowid").fetchall()
    assert rows == [("rater-1", choice) for _, _, choice in actions]
