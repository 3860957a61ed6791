"""Scoring holds a video at the metrics' working size, never at the file's size: a bound on the pixels held
and on the peak memory of the whole offline metric suite."""

import tracemalloc

import numpy as np
import pytest

from anisora.evaluate import scoring
from anisora.evaluate.metrics import Metric, Result
from anisora.evaluate.scoring import build_metrics, score_file
from anisora.media import write_video

FRAMES = 16


class ShapeRecorder(Metric):
    """Scores nothing; keeps the shape of every video it is given."""

    name = "shape_recorder"
    version = "1"

    def __init__(self):
        self.shapes = []

    def score_video(self, video: np.ndarray) -> Result:
        self.shapes.append(video.shape)
        return Result(0.0)


def gradient_clip(frames: int, width: int, height: int) -> np.ndarray:
    """A gradient with a bright bar sliding right: some motion and texture for every metric."""
    yy, xx = np.mgrid[:height, :width]
    background = np.stack([xx * 255 // width, yy * 255 // height, 255 - xx * 255 // width], -1)
    clip = np.repeat(background.astype(np.uint8)[None], frames, axis=0)
    for t in range(frames):
        x = (width // 4 + t * width // 64) % (width - width // 10)
        clip[t, height // 3 : height // 2, x : x + width // 10] = (250, 240, 60)
    return clip


@pytest.fixture(scope="module")
def hd_video(tmp_path_factory):
    """16 frames of 1280x720, larger than the working size."""
    path = tmp_path_factory.mktemp("hd") / "hd.mp4"
    write_video(path, gradient_clip(FRAMES, 1280, 720), 8)
    return path


def test_metrics_see_the_video_at_the_working_size(hd_video):
    recorder = ShapeRecorder()
    record = score_file([recorder], hd_video, None, "hd.mp4")
    frames, height, width, _ = recorder.shapes[0]
    assert frames == FRAMES and max(height, width) == scoring.WORKING_SIDE
    assert abs(width / height - 1280 / 720) < 0.01
    assert (record["width"], record["height"]) == (1280, 720)  # the file's size, as the record says
    assert any(f"scored at {width}x{height}" in note for note in record["notes"])


def test_a_long_video_is_scored_smaller_within_the_pixel_budget(hd_video, monkeypatch):
    budget = FRAMES * 160 * 90
    monkeypatch.setattr(scoring, "WORKING_PIXELS", budget)
    recorder = ShapeRecorder()
    score_file([recorder], hd_video, None, "hd.mp4")
    frames, height, width, _ = recorder.shapes[0]
    # the short side is rounded to whole pixels: at most one row per frame beyond the budget
    assert frames * height * width <= budget + frames * width
    assert width > height > 0


def test_a_video_too_long_for_the_budget_is_refused_before_decoding(hd_video, monkeypatch):
    monkeypatch.setattr(scoring, "WORKING_PIXELS", FRAMES * 32 * 18)
    monkeypatch.setattr(scoring, "iter_frames", None)  # decoding would fail with a TypeError
    with pytest.raises(scoring.InputError, match=r"16 frames of 1280x720 are too many to score at once"):
        score_file([ShapeRecorder()], hd_video, None, "hd.mp4")


def test_peak_memory_of_the_offline_suite_is_bounded_by_the_working_size(hd_video, tmp_path):
    metrics = build_metrics()
    warm_up = tmp_path / "small.mp4"  # first calls load models and caches, which are not the video's memory
    write_video(warm_up, gradient_clip(9, 64, 48), 8)
    score_file(metrics, warm_up, None, "small.mp4")
    tracemalloc.start()
    try:
        record = score_file(metrics, hd_video, None, "hd.mp4")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(record["scores"]) >= 6
    frame = 480 * 854 * 3  # bytes of one decoded frame at the working size
    # the video once, motion smoothness' rebuilt frames (half the video) and per-frame work buffers (flow,
    # histograms, BRISQUE: ~25 frames measured); the video at 1280x720 would need 2.25 frames per frame
    bound = 1.75 * FRAMES * frame + 32 * frame
    assert peak < bound, f"peak {peak / frame:.0f} frames, more than {bound / frame:.0f}"
