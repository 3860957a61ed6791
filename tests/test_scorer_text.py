"""Text scorer: text_area on drawn text, subtitles against ToonWorld ground truth, config, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from anisora.curate.scorers import scorer_class
from anisora.curate.scorers.base import ClipSamples, spread
from anisora.curate.scorers.text import TextConfig, TextScorer
from anisora.errors import InputError
from anisora.toonworld import ShotRenderer, plan_episode
from anisora.toonworld.text import paste, render_text

K = 8  # frames per clip, as the pipeline hands them to scorers (curate frames_per_clip)
BOX_KEYS = ("text_subtitle_x0", "text_subtitle_y0", "text_subtitle_x1", "text_subtitle_y1")


@pytest.fixture(scope="module")
def scorer() -> TextScorer:
    return TextScorer()  # one engine for the module: loading it costs about half a second


def _clip(frames: np.ndarray, width: int | None = None, height: int | None = None) -> ClipSamples:
    """A clip whose analysis frames are `frames`; the source may be larger (width x height)."""
    h, w = frames.shape[1:3]
    n = len(frames)
    return ClipSamples("synthetic.mp4", 24.0, width or w, height or h, 0, max(n, 1), frames, tuple(range(n)))


def _drawn(w: int, h: int, text: str, size: int, where: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A flat frame with outlined white text (ToonWorld's subtitle look) and the tight box of its pixels."""
    image = np.full((h, w, 3), (70, 120, 170), np.uint8)
    sprite = render_text(text, size)
    x = (w - sprite.width) // 2 if where in ("bottom", "top") else w // 16
    y = {"bottom": h - sprite.height - h // 20, "top": h // 20, "middle": h // 2}[where]
    return image, paste(image, sprite, x, y)


def test_blank_frames_have_no_text(scorer):
    scores = scorer.score(_clip(np.full((K, 180, 320, 3), 128, np.uint8)))
    assert scores["text_area"] == 0.0 and scores["text_scene_area"] == 0.0
    assert scores["text_subtitle"] is False and scores["text_subtitle_band"] is None
    assert scores["text_subtitle_share"] == 0.0
    assert all(scores[k] is None for k in BOX_KEYS)
    assert scores["text_frames"] == 4  # default: 4 of the K frames
    assert all(k.startswith("text_") for k in scores)
    assert all(v is None or type(v) in (bool, int, float, str) for v in scores.values())


def test_no_frames_gives_no_scores(scorer):
    scores = scorer.score(_clip(np.zeros((0, 180, 320, 3), np.uint8), 320, 180))
    assert scores["text_frames"] == 0 and scores["text_area"] is None and scores["text_subtitle"] is False


@pytest.mark.parametrize(
    ("w", "h", "text", "size", "where"),
    [
        (320, 180, "Hello there!", 22, "bottom"),
        (320, 180, "你好，世界", 16, "bottom"),
        (854, 480, "See you tomorrow!", 40, "top"),
        (320, 180, "OPEN", 30, "middle"),
    ],
)
def test_text_area_and_subtitle_box_on_drawn_text(scorer, w, h, text, size, where):
    image, (x0, y0, x1, y1) = _drawn(w, h, text, size, where)
    true_area = (x1 - x0) * (y1 - y0) * 100.0 / (w * h)
    scores = scorer.score(_clip(np.stack([image] * 4), 2 * w, 2 * h))  # source twice the analysis size
    # DB boxes carry a margin around the glyphs ("unclip"): 1.3-1.9x the tight box area
    assert true_area <= scores["text_area"] <= 2.2 * true_area
    if where == "middle":  # off centre, mid-frame: scene text
        assert scores["text_subtitle"] is False and scores["text_subtitle_band"] is None
        assert scores["text_scene_area"] == pytest.approx(scores["text_area"])
        return
    assert scores["text_subtitle"] is True and scores["text_subtitle_band"] == where
    assert scores["text_subtitle_share"] == 1.0
    assert scores["text_scene_area"] == pytest.approx(0.0)
    sx0, sy0, sx1, sy1 = (scores[k] for k in BOX_KEYS)
    assert all(type(v) is int for v in (sx0, sy0, sx1, sy1))
    margin = 2 * (y1 - y0)  # source pixels: the box holds the text and not much more
    assert 2 * x0 - margin <= sx0 <= 2 * x0 and 2 * x1 <= sx1 <= 2 * x1 + margin
    assert 2 * y0 - margin <= sy0 <= 2 * y0 and 2 * y1 <= sy1 <= 2 * y1 + margin


def _toonworld_clips(seeds, seconds=40, width=320, height=180):
    """Per shot: a K-frame clip spread evenly over its frames at full brightness (fades skipped), the
    per-frame ground truth and the shot plan. Shots with fewer than K such frames are skipped."""
    for seed in seeds:
        plan = plan_episode(seed, 0, seconds, width, height, 24.0)
        for shot in plan.shots:
            lo, hi = shot.fade_in, shot.num_frames - shot.fade_out  # frames outside fades
            if hi - lo < K:
                continue
            renderer = ShotRenderer(shot)
            js = np.linspace(lo, hi - 1, K).round().astype(int)
            rendered = [renderer.render(int(j)) for j in js]
            frames = np.stack([image for image, _, _ in rendered])
            indices = tuple(int(shot.start + j) for j in js)
            end = shot.start + shot.num_frames
            clip = ClipSamples(f"toon_s{seed}", plan.fps, width, height, shot.start, end, frames, indices)
            yield clip, [boxes for _, _, boxes in rendered], shot


def test_subtitles_against_toonworld_ground_truth(scorer):
    """Positive: subtitles in >= 50 % of the clip's K frames; negative: in none; shots in between are not
    counted. Negatives include every shot that shows only scene text (signs, posters)."""
    counts = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    signs_only = signs_flagged = degraded_pos = degraded_found = 0
    missed = []
    for clip, truth, shot in _toonworld_clips(range(20)):
        shown = sum(bool(t["subtitles"]) for t in truth)
        if 0 < shown < K / 2:
            continue
        scores = scorer.score(clip)
        positive, flagged = shown >= K / 2, scores["text_subtitle"]
        counts[("tp" if flagged else "fn") if positive else ("fp" if flagged else "tn")] += 1
        if positive and shot.degrade:
            degraded_pos += 1
            degraded_found += flagged
        if not positive and any(t["scene_text"] for t in truth):
            signs_only += 1
            signs_flagged += flagged
        if positive != flagged:
            missed.append((clip.source, shot.index, "FN" if positive else "FP", shot.camera, shot.set_name))
        if positive and flagged:  # the band and the box are right, so the band can be cropped off
            assert scores["text_subtitle_band"] == shot.subtitles[0].position
            rows = [y for t in truth for box in t["subtitles"] for y in (box[1], box[3])]
            assert scores["text_subtitle_y0"] <= min(rows) + 1 and scores["text_subtitle_y1"] >= max(rows) - 1
    tp, fn, fp, tn = counts["tp"], counts["fn"], counts["fp"], counts["tn"]
    recall, precision = tp / max(tp + fn, 1), tp / max(tp + fp, 1)
    print(
        f"\ntext subtitles vs ToonWorld (20 episodes x 40 s, 320x180): {tp + fn + fp + tn} shots, "
        f"tp={tp} fn={fn} fp={fp} tn={tn}, recall={recall:.3f} precision={precision:.3f}; "
        f"sign-only shots flagged {signs_flagged}/{signs_only}; degraded positives found "
        f"{degraded_found}/{degraded_pos}; errors: {missed}"
    )
    assert tp + fn + fp + tn >= 60 and tp + fn >= 15
    assert recall >= 0.95 and precision >= 0.9


def test_persistence_is_the_share_threshold(scorer):
    image, _ = _drawn(320, 180, "Hello there!", 22, "bottom")
    blank = np.full_like(image, (70, 120, 170))
    frames = np.stack([image, blank, blank, blank])  # the subtitle in 1 of 4 frames
    assert scorer.score(_clip(frames))["text_subtitle"] is False
    assert scorer.score(_clip(frames))["text_subtitle_share"] == 0.25
    assert TextScorer(TextConfig(persistence=0.25)).score(_clip(frames))["text_subtitle"] is True


def test_pickles_before_and_after_first_use():
    image, _ = _drawn(320, 180, "Hello there!", 22, "bottom")
    clip = _clip(np.stack([image] * 4))
    fresh = TextScorer(TextConfig(frames=2))
    loaded = pickle.loads(pickle.dumps(fresh))
    assert loaded.config == fresh.config and loaded.cache_key() == fresh.cache_key()
    first = loaded.score(clip)
    again = pickle.loads(pickle.dumps(loaded))  # the engine stays behind and is rebuilt on use
    assert "_ocr" not in vars(again)
    assert again.score(clip) == first


def test_config_errors_are_one_line_input_errors():
    assert scorer_class("text") is TextScorer
    with pytest.raises(InputError, match="persistence"):
        TextScorer.from_dict({"persistence": 0})
    with pytest.raises(InputError, match="min_side"):
        TextScorer.from_dict({"min_side": 2000})
    with pytest.raises(InputError, match=r"scorers\.text"):
        TextScorer.from_dict({"no_such_key": 1})
    assert TextScorer.from_dict({"frames": 0}).config.frames == 0
    assert spread(8, TextScorer().config.frames) == [1, 3, 5, 7]
