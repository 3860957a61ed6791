"""Foreground detectors for region training on real clips: MOG2 default, ONNX segmenter adapter."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from anisora.errors import InputError
from anisora.toonworld.held_out import held_out_shots
from anisora.train.foreground import MotionForeground, OnnxSegmenter, foreground_detector


def test_motion_foreground_finds_walkers_and_nothing_else():
    shots = held_out_shots(8, 17, 8.0, 160, 96, still_camera=True)
    walkers = [s for s in shots if s.label == "walking"]
    assert walkers
    detector = MotionForeground()
    for shot in shots:
        found, truth = detector(shot.frames).any(axis=0), shot.foreground.any(axis=0)
        if found.any():  # what moves is a character: no false alarms on the set
            assert (found & truth).sum() / found.sum() > 0.95
    for shot in walkers:  # a walking character moves as a whole
        found, truth = detector(shot.frames).any(axis=0), shot.foreground.any(axis=0)
        assert (found & truth).sum() / truth.sum() > 0.6
    still = np.repeat(shots[0].frames[:1], 9, axis=0)
    assert not detector(still).any()


def _red_channel_model(path, size: int) -> None:
    """A stand-in for anime-seg's isnetis.onnx: input "img" 1x3xSxS, output 1x1xSxS = the red channel."""
    starts, ends, axes = (
        helper.make_tensor(n, TensorProto.INT64, [1], [v])
        for n, v in zip(("starts", "ends", "axes"), (0, 1, 1), strict=True)
    )
    graph = helper.make_graph(
        [helper.make_node("Slice", ["img", "starts", "ends", "axes"], ["mask"])],
        "red",
        [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, size, size])],
        [starts, ends, axes],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def test_onnx_segmenter_pads_segments_and_crops_back(tmp_path):
    _red_channel_model(tmp_path / "seg.onnx", 64)
    frames = np.zeros((5, 48, 80, 3), np.uint8)
    frames[:, 10:30, 20:40, 0] = 255  # a red box
    frames[3:, 10:30, 50:70, 0] = 255  # a second box appears at frame 3
    segmenter = foreground_detector(str(tmp_path / "seg.onnx"))
    assert isinstance(segmenter, OnnxSegmenter) and segmenter.size == 64
    masks = segmenter(frames)
    assert masks.shape == (5, 48, 80) and masks.dtype == bool
    box = np.zeros((48, 80), bool)
    box[10:30, 20:40] = True
    assert (masks[0] == box).mean() > 0.97
    # stride 4: frames 1-3 reuse frame 0's mask, frame 4 is segmented again and sees the second box
    assert np.array_equal(masks[3], masks[0]) and masks[4][15:25, 55:65].all()


def test_detector_specs_and_errors(tmp_path):
    assert foreground_detector(None) is None and foreground_detector("none") is None
    assert isinstance(foreground_detector("motion"), MotionForeground)
    with pytest.raises(InputError, match="none, motion or a"):
        foreground_detector("saliency")
    with pytest.raises(InputError, match="does not exist"):
        OnnxSegmenter(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot load"):
        OnnxSegmenter(tmp_path / "bad.onnx")
    with pytest.raises(InputError, match="uint8"):
        MotionForeground()(np.zeros((2, 8, 8), np.uint8))
