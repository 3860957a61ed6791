"""ToonWorld: deterministic per seed, and its ground truth is true of the pixels."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from anisora.cli import main
from anisora.errors import InputError
from anisora.media import iter_frames, probe, read_frames
from anisora.toonworld import ACTIONS, ShotRenderer, load_masks, plan_episode, render_episode, write_episode
from anisora.toonworld.phrases import all_text
from anisora.toonworld.text import FONT_PATH


def _digest(plan) -> list[int]:
    return [hash(img.tobytes()) ^ hash(mask.tobytes()) for _, _, img, mask, _ in render_episode(plan)]


def test_same_seed_same_episode_other_seed_differs():
    a, b = plan_episode(7, 0, 6, 96, 64), plan_episode(7, 0, 6, 96, 64)
    assert [s.to_json() for s in a.shots] == [s.to_json() for s in b.shots]
    assert _digest(a) == _digest(b)
    c = plan_episode(8, 0, 6, 96, 64)
    assert _digest(c) != _digest(a)
    assert plan_episode(7, 1, 6, 96, 64).shots[0].to_json() != a.shots[0].to_json()


def test_plan_covers_every_frame_and_labels_vary():
    labels, cameras = set(), set()
    for seed in range(12):
        plan = plan_episode(seed, 0, 30, 96, 64)
        starts = [s.start for s in plan.shots]
        assert starts[0] == 0 and plan.num_frames == 30 * 24
        assert all(
            s.start + s.num_frames == n
            for s, n in zip(plan.shots, [*starts[1:], plan.num_frames], strict=True)
        )
        assert [t["frame"] for t in plan.transitions] == starts[1:]
        labels |= {s.label for s in plan.shots}
        cameras |= {s.camera for s in plan.shots}
    assert labels == set(ACTIONS)
    assert cameras == {"still", "pan_left", "pan_right", "zoom_in", "zoom_out", "follow"}


@pytest.mark.parametrize("seconds,size", [(0, (96, 64)), (5, (8, 64)), (5, (96, 9000))])
def test_bad_episode_parameters(seconds, size):
    with pytest.raises(InputError):
        plan_episode(0, 0, seconds, *size)


def _shots(predicate, seeds=range(40), **kw):
    for seed in seeds:
        for shot in plan_episode(seed, 0, 20, 160, 96, **kw).shots:
            if predicate(shot):
                yield shot


def test_masks_cover_exactly_what_is_drawn_over_the_set():
    checked = 0
    for shot in _shots(lambda s: not s.degrade and not s.subtitles and s.label != "static", seeds=range(6)):
        renderer = ShotRenderer(shot)
        for j in range(shot.fade_in, shot.num_frames - shot.fade_out, 7):
            if j in shot.flash_frames:  # test_toonworld_effects
                continue
            image, mask, _ = renderer.render(j)
            bare = renderer.background(renderer.camera(j / shot.fps))
            changed = np.any(image != bare, axis=-1)
            x0, y0, x1, y1 = shot.content_box
            inside = np.zeros_like(changed)
            inside[y0:y1, x0:x1] = True
            assert not np.any(changed & inside & (mask == 0)), "a drawn pixel outside the mask"
            fg = mask > 0
            if fg.sum() > 50:
                assert changed[fg].mean() > 0.9  # the mask is the character, not a loose blob
            checked += 1
    assert checked > 50


def test_subtitle_boxes_are_tight_around_the_text():
    checked = 0
    for shot in _shots(lambda s: bool(s.subtitles) and not s.degrade, seeds=range(10)):
        with_text = ShotRenderer(shot)
        without = ShotRenderer(dataclasses.replace(shot, subtitles=[]))
        for ev in shot.subtitles:
            j = (ev.start + ev.end) // 2
            image, _, boxes = with_text.render(j)
            plain, _, _ = without.render(j)
            diff = np.argwhere(np.any(image != plain, axis=-1))
            assert len(boxes["subtitles"]) == 1
            x0, y0, x1, y1 = boxes["subtitles"][0]
            assert (diff[:, 0].min(), diff[:, 1].min()) == (y0, x0)
            assert (diff[:, 0].max() + 1, diff[:, 1].max() + 1) == (y1, x1)
            cy = (y0 + y1) / 2
            assert cy > shot.height * 0.7 if ev.position == "bottom" else cy < shot.height * 0.3
            checked += 1
        assert without.render(shot.subtitles[0].start)[2]["subtitles"] == []
    assert checked >= 10


def test_static_shots_do_not_move_and_letterbox_bars_are_black():
    static = next(_shots(lambda s: s.static and not s.subtitles and not s.fade_in and not s.fade_out))
    renderer = ShotRenderer(static)
    first = renderer.render(0)[0]
    assert all(np.array_equal(first, renderer.render(j)[0]) for j in range(1, static.num_frames, 5))
    boxed = next(_shots(lambda s: bool(s.letterbox) and not s.degrade and not s.fade_in and not s.fade_out))
    image, mask, _ = ShotRenderer(boxed).render(boxed.num_frames // 2)
    x0, y0, x1, y1 = boxed.content_box
    outside = np.ones(mask.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert outside.any() and image[outside].max() == 0 and mask[outside].max() == 0


def test_cjk_glyphs_are_in_the_shipped_font():
    font = ImageFont.truetype(str(FONT_PATH), 24)

    def pixels(ch: str) -> bytes:
        image = Image.new("L", (32, 32))
        ImageDraw.Draw(image).text((2, 2), ch, font=font, fill=255)
        return image.tobytes()

    missing = pixels("\ufffe")  # not in the subset: .notdef
    for ch in sorted(set(all_text()) - {" "}):
        drawn = pixels(ch)
        assert any(drawn) and drawn != missing, f"{ch!r} is missing from the font"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One episode written to disk, chosen to hold hard cuts, a fade and subtitles."""
    out = tmp_path_factory.mktemp("toon")
    for seed in range(50):
        plan = plan_episode(seed, 0, 16, 160, 96)
        types = {t["type"] for t in plan.transitions}
        if types == {"cut", "fade"} and any(s.subtitles for s in plan.shots):
            paths = write_episode(plan, out)
            return plan, paths, json.loads(paths["json"].read_text(encoding="utf-8"))
    raise AssertionError("no seed gives cuts, a fade and subtitles")


def test_written_files_agree_with_the_plan(written):
    plan, paths, gt = written
    info = probe(paths["video"])
    assert (info.width, info.height, info.frame_count) == (160, 96, plan.num_frames)
    assert info.fps == pytest.approx(24.0)
    masks = load_masks(paths["json"])
    assert masks.shape == (plan.num_frames, 96, 160) and masks.dtype == np.uint8
    rendered = [(img, m) for _, _, img, m, _ in render_episode(plan)]
    assert all(np.array_equal(m, masks[i]) for i, (_, m) in enumerate(rendered))
    decoded = np.stack([f.image for f in iter_frames(paths["video"])])
    err = np.abs(decoded.astype(int) - np.stack([img for img, _ in rendered])).mean()
    assert err < 4.0
    assert gt["num_frames"] == len(gt["frames"]) == plan.num_frames
    assert gt["cuts"] == [s["start"] for s in gt["shots"][1:]]
    assert all(s["caption"] for s in gt["shots"])


def test_cuts_are_where_the_frames_change(written):
    _, paths, gt = written
    frames = np.stack([f.image for f in iter_frames(paths["video"])]).astype(np.float32)
    diff = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # diff[i]: frame i -> i + 1
    for t in gt["transitions"]:
        c = t["frame"]
        if t["type"] == "cut":
            nearby = np.r_[diff[max(c - 6, 0) : c - 1], diff[c : c + 5]]
            assert diff[c - 1] > 2 * np.median(nearby) and diff[c - 1] > 8
        else:
            brightness = frames.mean(axis=(1, 2, 3))
            assert brightness[c - 1] < 0.6 * brightness[t["start"] - 1]
            assert brightness[c] < 0.6 * brightness[t["end"]]


def test_subtitles_are_visible_in_the_video(written):
    plan, paths, gt = written
    # noise does not compress: judge the subtitles of clean shots
    subtitles = [s for s in gt["subtitles"] if not gt["shots"][s["shot"]]["degrade"]]
    assert subtitles
    middles = [(s["start"] + s["end"]) // 2 for s in subtitles]
    for sub, index, frame in zip(subtitles, middles, read_frames(paths["video"], middles), strict=True):
        shot = plan.shots[sub["shot"]]
        plain = ShotRenderer(dataclasses.replace(shot, subtitles=[])).render(index - shot.start)[0]
        diff = np.abs(frame.astype(int) - plain).mean(-1)
        x0, y0, x1, y1 = sub["box"]
        inside = np.zeros(diff.shape, bool)
        inside[y0:y1, x0:x1] = True
        assert diff[inside].mean() > 30 and diff[inside].mean() > 6 * diff[~inside].mean()


def test_cli_writes_episodes_and_rejects_bad_input(tmp_path, capsys):
    assert (
        main(
            [
                "toonworld",
                "episodes",
                "--out",
                str(tmp_path),
                "--episodes",
                "2",
                "--seconds",
                "2",
                "--size",
                "96x64",
                "--seed",
                "3",
                "--contact-sheet",
            ]
        )
        == 0
    )
    for i in range(2):
        name = f"toon_s3_e000{i}"
        assert probe(tmp_path / f"{name}.mp4").frame_count == 48
        assert (tmp_path / f"{name}.masks.npz").stat().st_size > 0
        assert (tmp_path / f"{name}.sheet.png").stat().st_size > 0
        assert json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))["episode"] == name
    capsys.readouterr()
    assert main(["toonworld", "episodes", "--out", str(tmp_path), "--seconds", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anisora: error:") and "\n" not in err


def test_short_episodes_of_any_length_plan_fully():
    for seconds in (0.2, 1, 2.5, 6, 7.3):
        for seed in range(30):
            plan = plan_episode(seed, 0, seconds, 64, 48)
            assert plan.num_frames == round(seconds * 24) and all(s.num_frames > 0 for s in plan.shots)


def test_an_opening_repeats_frame_for_frame_across_the_episodes_of_a_seed():
    first, second = (plan_episode(5, index, 6, 96, 64, 12, opening=2.0) for index in (0, 1))
    assert first.opening_frames == second.opening_frames == 24 and first.shots[0] == second.shots[0]
    assert first.shots[1] != second.shots[1] and first.transitions[0] == {"frame": 24, "type": "cut"}
    frames = [[image for _, _, image, _, _ in render_episode(plan)] for plan in (first, second)]
    np.testing.assert_array_equal(np.stack(frames[0][:24]), np.stack(frames[1][:24]))
    assert first.num_frames == 72 and [s.start for s in first.shots][:2] == [0, 24]
    assert plan_episode(5, 0, 6, 96, 64, 12).opening_frames == 0
    with pytest.raises(InputError, match="opening"):
        plan_episode(5, 0, 6, 96, 64, 12, opening=6.0)
