"""Classical image quality: the offline default in place of a learned aesthetic score.

No learned aesthetics here, and the names say so: this is *image quality* (is the picture clean, sharp,
well exposed and colourful), not "aesthetic (LAION)". The LAION improved aesthetic predictor: `aesthetic.py`.

Per used frame (`frames` of the K sampled ones, evenly spread; black letterbox/pillarbox bars trimmed first):

- `quality_brisque`: BRISQUE (Mittal et al. 2012) from the `brisque` package on the frame resized so its
  long side is at most `max_side`; lower is better, roughly 0-100+. None for flat frames (undefined there).
  BRISQUE's model is trained on natural photographs: on clean flat-shaded cartoons it reads the flat areas
  as a distortion (clean ToonWorld frames score 75-125, the same frames with noise 20-60, natural photos
  3-11), so it is reported in full but weighs little in `quality_score`; the terms below catch noise and blur.
- `quality_sharpness`: variance of the Laplacian of the grey frame (Pech-Pacheco et al. 2000) at analysis
  resolution, minus the share that noise adds (20 sigma^2 for the 3x3 Laplacian), floored at 0.
- `quality_noise`: robust noise sigma in grey levels: 1.4826 * median |r| / 6 with r the frame filtered by
  [[1,-2,1],[-2,4,-2],[1,-2,1]] (Immerkaer 1996, with a median in place of the mean so edges do not count).
- `quality_brightness`: mean grey level (0-255); `quality_clipped`: share of pixels <= 5 or >= 250.
- `quality_colorfulness`: Hasler & Suesstrunk (2003) M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 sqrt(mean_rg^2 +
  mean_yb^2), rg = R - G, yb = (R + G) / 2 - B (15 slightly, 33 moderately, 59 quite, 82+ highly colourful).

`quality_score` (0-10, 10 = clean, sharp, well exposed, colourful) is the mean over the used frames of

    10 * exposure * (0.35 sharp + 0.30 clean + 0.25 colour + 0.10 brisque)

with each term clipped to [0, 1]:

    exposure = min(brightness / 40, (255 - brightness) / 40, 1 - (clipped - 0.25) / 0.5)
    sharp    = log10(sharpness / 10) / 1.5        (0 at 10, 1 from 316 up)
    clean    = (6 - noise) / 5                    (1 up to sigma 1, 0 from sigma 6)
    colour   = colorfulness / 45
    brisque  = (100 - brisque) / 80               (0 for flat frames)

It rises with sharpness, colourfulness and (over the middle range) brightness, and falls with noise,
clipping and BRISQUE. Exposure multiplies the rest: a black or washed-out frame scores 0 whatever else it has.
With `brisque: false` the BRISQUE term is left out and the other weights are divided by 0.9.

Meant for the training-prompt suffix ("aesthetic score: X.X.") when no LAION predictor weights are given.
It is a stand-in on a different scale, not the LAION score: a model fine-tuned with it must be prompted with
quality scores, and it marks down styles that may be intended (film grain, monochrome manga, soft focus).
"""

from __future__ import annotations

import importlib.util
import math
import pickle
import threading
import warnings
from pathlib import Path
from typing import Annotated, ClassVar

import cv2
import numpy as np
from pydantic import Field

from .base import ClipSamples, Scorer, ScorerConfig, spread

DARK, BRIGHT = 5, 250  # grey levels counted as clipped (<= DARK or >= BRIGHT)
WEIGHTS = {"sharp": 0.35, "clean": 0.30, "colour": 0.25, "brisque": 0.10}
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
_BAR_LEVEL = 12.0  # a border row/column whose mean grey is at most this is a black bar
_FLAT_STD = 1.0  # grey standard deviation below which a frame is flat (BRISQUE undefined)
_QUALITY_KEYS = ("score", "brisque", "sharpness", "noise", "brightness", "clipped", "colorfulness")
_ROUNDING = 1e-9  # |grey - local mean| below this is rounding error (grey is in [0, 1])


class QualityConfig(ScorerConfig):
    frames: Annotated[int, Field(ge=0)] = 1
    """frames used per clip, evenly spread over the K sampled ones; 0 = all"""
    max_side: Annotated[int, Field(ge=32)] = 256
    """BRISQUE runs on the frame resized to this long side at most (its cost ~ pixels)"""
    brisque: bool = True
    """False skips BRISQUE (the slow part); its weight is then shared by the others"""


def _clip01(x: float) -> float:
    return min(max(float(x), 0.0), 1.0)


def picture_box(grey: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the frame without black bars at its edges; the whole frame when the bars would
    leave less than half of either side (then the frame is dark, not letterboxed)."""
    h, w = grey.shape
    rows = grey.mean(axis=1) > _BAR_LEVEL
    cols = grey.mean(axis=0) > _BAR_LEVEL
    if not rows.any() or not cols.any():
        return 0, h, 0, w
    y0, y1 = int(np.argmax(rows)), h - int(np.argmax(rows[::-1]))
    x0, x1 = int(np.argmax(cols)), w - int(np.argmax(cols[::-1]))
    if (y1 - y0) * 2 < h or (x1 - x0) * 2 < w:
        return 0, h, 0, w
    return y0, y1, x0, x1


def noise_sigma(grey: np.ndarray) -> float:
    """Robust estimate of additive white noise sigma (grey levels)."""
    r = cv2.filter2D(grey.astype(np.float32), -1, _NOISE_KERNEL)[1:-1, 1:-1]
    return 1.4826 * float(np.median(np.abs(r))) / 6.0 if r.size else 0.0


def sharpness(grey: np.ndarray, sigma: float) -> float:
    """Variance of the 3x3 Laplacian with the noise share (20 sigma^2) taken out."""
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    return max(float(lap.var()) - 20.0 * sigma * sigma, 0.0)


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness M."""
    f = rgb.astype(np.float32)
    rg = f[..., 0] - f[..., 1]
    yb = 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def combine(
    brisque: float | None,
    sharp: float,
    noise: float,
    brightness: float,
    clipped: float,
    colour: float,
    use_brisque: bool = True,
) -> float:
    """The documented 0-10 `quality_score` of one frame (see the module docstring)."""
    exposure = _clip01(min(brightness / 40.0, (255.0 - brightness) / 40.0, 1.0 - (clipped - 0.25) / 0.5))
    terms = {
        "sharp": _clip01(math.log10(sharp / 10.0) / 1.5) if sharp > 0 else 0.0,
        "clean": _clip01((6.0 - noise) / 5.0),
        "colour": _clip01(colour / 45.0),
    }
    if use_brisque:
        terms["brisque"] = _clip01((100.0 - brisque) / 80.0) if brisque is not None else 0.0
    total = sum(WEIGHTS[k] for k in terms)
    return min(10.0 * exposure * sum(WEIGHTS[k] * v for k, v in terms.items()) / total, 10.0)


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


_LOADING = threading.Lock()
_GREY = np.array([0.2125, 0.7154, 0.0721])  # scikit-image's rgb2gray
_FEATURES = 36  # BRISQUE's 18 features at full and at half size


class Brisque:
    """BRISQUE as the `brisque` package (0.2) computes it, with its model files, without importing it: the
    package imports scipy.signal, scikit-image's io, requests and more (about 0.8 s of CPU) to use
    scipy.special, scipy.optimize and libsvm. The same numeric steps in the same order (scores equal the
    package's to 1e-9, tested), except that the local Gaussian mean and deviation come from cv2.filter2D
    instead of scipy's convolve2d (the same zero-padded 'same' convolution: the kernel is symmetric), 3-4x
    faster, and that MSCN coefficients within rounding error of 0 are set to 0, their exact value: on flat
    cartoon areas the package's result hangs on the sign of that rounding error (its fits split coefficients
    at 0), which differs between any two convolution codes by up to 7 points. The package's first MSCN pass,
    whose result it throws away, is left out. The support-vector regression is summed here in a fixed order:
    libsvm sums it in an OpenMP reduction whose order changes from call to call (two calls on one frame
    differ by up to 6e-13 when it has several threads), which made manifests differ between runs. Lower is
    better."""

    def __init__(self):
        from libsvm import svm, svmutil
        from scipy import optimize, special  # noqa: F401  (imported here, at load time, for `_aggd_fit`)

        spec = importlib.util.find_spec("brisque")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "quality.brisque needs the brisque package (its model files): pip install brisque"
            )
        models = Path(next(iter(spec.submodule_search_locations))) / "models"
        model = svmutil.svm_load_model(str(models / "svm.txt"))
        kind = (model.param.svm_type, model.param.kernel_type)
        if kind != (svm.svm_forms.EPSILON_SVR, svm.kernel_names.RBF):
            raise ValueError(f"{models / 'svm.txt'}: not the RBF regression model BRISQUE ships")
        self.support = np.zeros((model.get_nr_sv(), _FEATURES), dtype=np.float64)
        for row, vector in enumerate(model.get_SV()):
            for index, value in vector.items():
                if index > 0:
                    self.support[row, index - 1] = value
        self.coefficients = np.array([c[0] for c in model.get_sv_coef()], dtype=np.float64)
        self.rho, self.gamma = float(model.rho[0]), float(model.param.gamma)
        with open(models / "normalize.pickle", "rb") as f:
            scale = pickle.load(f)
        self.low = np.array([float(m) for m in scale["min_"]], dtype=np.float64)
        self.high = np.array([float(m) for m in scale["max_"]], dtype=np.float64)
        n, sigma = 7, 7 / 6
        y, x = np.indices((n, n)) - int(n / 2)
        kernel = 1 / (2 * np.pi * sigma**2) * np.exp(-(x**2 + y**2) / (2 * sigma**2))
        self.kernel = kernel / np.sum(kernel)

    def score(self, rgb: np.ndarray) -> float:
        grey = np.multiply(rgb, 1.0 / 255, dtype=np.float64) @ _GREY
        half = cv2.resize(grey, None, fx=1 / 2, fy=1 / 2, interpolation=cv2.INTER_CUBIC)
        features = np.concatenate((self._features(grey), self._features(half)))
        scaled = -1 + (2.0 / (self.high - self.low) * (features - self.low))
        distances = np.sum((self.support - scaled) ** 2, axis=1)
        return float(self.coefficients @ np.exp(-self.gamma * distances) - self.rho)

    def _mscn(self, image: np.ndarray) -> np.ndarray:
        def blur(x):
            return cv2.filter2D(x, cv2.CV_64F, self.kernel, borderType=cv2.BORDER_CONSTANT)

        mean = blur(image)
        deviation = np.sqrt(np.abs(mean**2 - blur(image**2)))
        centred = image - mean
        centred[np.abs(centred) < _ROUNDING] = 0.0
        return centred / (deviation + 1 / 255)

    def _features(self, image: np.ndarray) -> list[float]:
        m = self._mscn(image)
        products = (
            m[:, :-1] * m[:, 1:],
            m[:-1, :] * m[1:, :],
            m[:-1, :-1] * m[1:, 1:],
            m[1:, :-1] * m[:-1, 1:],
        )
        alpha, _, left, right = _aggd_fit(m)
        features = [alpha, (left**2 + right**2) / 2]
        for product in products:
            alpha, mean, left, right = _aggd_fit(product)
            features += [alpha, mean, left**2, right**2]
        return [float(np.asarray(f).reshape(-1)[0]) for f in features]


def _aggd_fit(x: np.ndarray) -> tuple:
    """The asymmetric generalised Gaussian fit of the `brisque` package, operation for operation."""
    from scipy import optimize, special

    size = np.prod(x.shape)
    r_hat = (np.sum(np.abs(x)) / size) ** 2 / (np.sum(x**2) / size)
    negative, positive = x[x < 0], x[x >= 0]
    left_squares = np.sum(negative**2) / negative.shape
    right_squares = np.sum(positive**2) / positive.shape
    gamma = np.sqrt(left_squares) / np.sqrt(right_squares)
    big_r = r_hat * ((gamma**3 + 1) * (gamma + 1)) / (gamma**2 + 1) ** 2

    def phi(alpha):
        return special.gamma(2 / alpha) ** 2 / (special.gamma(1 / alpha) * special.gamma(3 / alpha))

    alpha = optimize.root(lambda z: phi(z) - big_r, [0.2]).x[0]
    left, right = np.sqrt(left_squares), np.sqrt(right_squares)
    constant = np.sqrt(special.gamma(1 / alpha) / special.gamma(3 / alpha))
    mean = (right - left) * constant * (special.gamma(2 / alpha) / special.gamma(1 / alpha))
    return alpha, mean, left, right


class QualityScorer(Scorer):
    """Scores: `quality_score` (0-10 stand-in for an aesthetic score), `quality_brisque`, `quality_sharpness`,
    `quality_noise`, `quality_brightness`, `quality_clipped`, `quality_colorfulness` (means over the used
    frames), `quality_frames`. Formulas in the module docstring."""

    name = "quality"
    version = "2"  # 2: BRISQUE with OpenCV filtering, MSCN rounding noise set to 0
    outputs: ClassVar[dict[str, type]] = {
        **{f"quality_{k}": float for k in _QUALITY_KEYS},
        "quality_frames": int,
    }
    Config = QualityConfig

    thread_safe = True  # BRISQUE's model is loaded once under a lock; scoring keeps no state

    def __getstate__(self) -> dict:
        return {"config": self.config}  # the BRISQUE model is reloaded where it is used

    def __setstate__(self, state: dict) -> None:
        self.config = state["config"]

    def load(self) -> None:
        if self.config.brisque:
            self._brisque_model()

    def _brisque_model(self) -> Brisque:
        if getattr(self, "_brisque", None) is None:
            with _LOADING:
                if getattr(self, "_brisque", None) is None:
                    self._brisque = Brisque()
        return self._brisque

    def brisque(self, rgb: np.ndarray) -> float | None:
        """BRISQUE of an RGB uint8 frame after resizing to `max_side`; None where it is undefined (flat)."""
        h, w = rgb.shape[:2]
        if min(h, w) < 16 or cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).std() < _FLAT_STD:
            return None
        scale = self.config.max_side / max(h, w)
        if scale < 1.0:
            size = (max(round(w * scale), 16), max(round(h * scale), 16))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        model = self._brisque_model()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                value = float(model.score(np.ascontiguousarray(rgb)))
            except (ValueError, ZeroDivisionError, FloatingPointError):
                return None
        return value if math.isfinite(value) else None

    def frame_scores(self, rgb: np.ndarray) -> dict[str, float | None]:
        """All measures of one RGB uint8 frame, keyed without the `quality_` prefix."""
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        y0, y1, x0, x1 = picture_box(grey)
        rgb, grey = rgb[y0:y1, x0:x1], grey[y0:y1, x0:x1]
        sigma = noise_sigma(grey)
        values = {
            "brisque": self.brisque(rgb) if self.config.brisque else None,
            "sharpness": sharpness(grey, sigma),
            "noise": sigma,
            "brightness": float(grey.mean()),
            "clipped": float(np.mean((grey <= DARK) | (grey >= BRIGHT))),
            "colorfulness": colorfulness(rgb),
        }
        values["score"] = combine(
            values["brisque"],
            values["sharpness"],
            sigma,
            values["brightness"],
            values["clipped"],
            values["colorfulness"],
            use_brisque=self.config.brisque,
        )
        return values

    def score(self, clip: ClipSamples) -> dict:
        per_frame = [self.frame_scores(clip.frames[i]) for i in spread(len(clip.frames), self.config.frames)]
        out = {f"quality_{k}": _mean([f[k] for f in per_frame]) for k in _QUALITY_KEYS}
        out["quality_frames"] = len(per_frame)
        return out
