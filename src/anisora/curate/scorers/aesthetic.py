"""LAION "improved aesthetic predictor" (christophschuhmann/improved-aesthetic-predictor): the paper's filter.

score = MLP(normalize(CLIP ViT-L/14 image embedding)), averaged over frames (the official curation code
averages about 16 uniformly sampled frames). The user brings the weights, nothing is downloaded:

- `clip_path`: a local transformers directory of a CLIP model (`save_pretrained` layout, e.g. a copy of
  openai/clip-vit-large-patch14): a full `CLIPModel` or a `CLIPVisionModelWithProjection`, with its
  `preprocessor_config.json` (CLIPImageProcessor: resize short side, centre crop, OpenAI mean/std).
- `head_path`: the MLP head, `sac+logos+ava1-l14-linearMSE.pth` (a state dict with keys `layers.0.weight`
  ... `layers.7.bias`) or the same tensors as `.safetensors`. Layer widths come from the tensors, so the input
  width is the CLIP projection dim (768 for ViT-L/14) and a head for another CLIP fits only that CLIP.

Architecture of the head (indices as in the published state dict): 0 Linear(d, 1024), 1 Dropout(0.2),
2 Linear(1024, 128), 3 Dropout(0.2), 4 Linear(128, 64), 5 Dropout(0.1), 6 Linear(64, 16), 7 Linear(16, 1).
The score is roughly 1-10 (LAION calls 5+ good, 6.5+ very good). torch and transformers are imported on first
use only.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from ...errors import InputError
from .base import ClipSamples, Scorer, ScorerConfig, spread

HEAD_LINEARS = (0, 2, 4, 6, 7)  # indices of the Linear layers in the published `layers` Sequential
HEAD_DROPOUTS = {1: 0.2, 3: 0.2, 5: 0.1}
_HEAD_KEY = re.compile(r"(?:^|\.)(layers\.\d+\.(?:weight|bias))$")


class AestheticConfig(ScorerConfig):
    clip_path: str = ""
    """required: local CLIP directory (save_pretrained layout)"""
    head_path: str = ""
    """required: the MLP head, .pth state dict or .safetensors"""
    frames: Annotated[int, Field(ge=0)] = 0
    """frames per clip, evenly spread over the K sampled ones; 0 = all K"""
    device: str = "cpu"
    batch_size: Annotated[int, Field(ge=1)] = 16


def load_head_state(path: str | Path) -> dict:
    """The head's tensors from a .pth/.pt/.ckpt state dict or a .safetensors file, keys `layers.N.weight|bias`
    (a prefix before `layers.`, such as `model.`, is dropped)."""
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(path))
        else:
            raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickled module instead of a state dict, ...
        raise InputError(f"{path}: cannot read the aesthetic head weights ({exc})") from None
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a state dict of the aesthetic head, got {type(raw).__name__}")
    state = {}
    for key, value in raw.items():
        match = _HEAD_KEY.search(str(key))
        if match and isinstance(value, torch.Tensor):
            state[match.group(1)] = value
    return state


def build_head(state: dict, path: str | Path = "head"):
    """The head as an `nn.Sequential` (the published `layers`), shaped from `state`, loaded, in eval mode."""
    import torch
    from torch import nn

    expected = {f"layers.{i}.{p}" for i in HEAD_LINEARS for p in ("weight", "bias")}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise InputError(
            f"{path}: not the LAION improved aesthetic predictor head (missing {missing or 'nothing'}, "
            f"unexpected {extra or 'nothing'})"
        )
    widths = [state["layers.0.weight"].shape[1]]
    for i in HEAD_LINEARS:
        weight, bias = state[f"layers.{i}.weight"], state[f"layers.{i}.bias"]
        if weight.ndim != 2 or weight.shape[1] != widths[-1] or bias.shape != weight.shape[:1]:
            shape = tuple(weight.shape)
            raise InputError(f"{path}: layer {i} of the aesthetic head has shape {shape}, does not chain")
        widths.append(weight.shape[0])
    if widths[-1] != 1:
        raise InputError(f"{path}: the aesthetic head must end in one output, it has {widths[-1]}")
    layers: list[nn.Module] = []
    for k, i in enumerate(HEAD_LINEARS):
        while len(layers) < i:
            layers.append(nn.Dropout(HEAD_DROPOUTS[len(layers)]))
        layers.append(nn.Linear(widths[k], widths[k + 1]))
    head = nn.Sequential(*layers)
    head.load_state_dict({k.removeprefix("layers."): v.to(torch.float32) for k, v in state.items()})
    return head.eval()


def require_all_weights(loading_info: dict, message: str) -> None:
    """transformers fills weights missing from a checkpoint with random values; refuse instead, since
    scores or captions from such a model would be noise."""
    missing = sorted(loading_info.get("missing_keys") or [])
    if missing:
        raise InputError(f"{message} ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})")


@contextmanager
def quiet_transformers():
    """transformers' warnings and progress bars off for a block (reports of weights skipped on purpose)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


class LaionAestheticScorer(Scorer):
    """Scores: `aesthetic_score` (mean of the LAION predictor over the used frames), `aesthetic_min`,
    `aesthetic_max`, `aesthetic_frames`."""

    name = "aesthetic"
    version = "1"
    Config = AestheticConfig
    uses_model = True
    outputs: ClassVar[dict[str, type]] = {
        "aesthetic_score": float,
        "aesthetic_min": float,
        "aesthetic_max": float,
        "aesthetic_frames": int,
    }

    def __init__(self, config: AestheticConfig | None = None):
        super().__init__(config)
        cfg = self.config
        for key in ("clip_path", "head_path"):
            value = getattr(cfg, key)
            if not value:
                raise InputError(
                    f"scorers.aesthetic.{key} is required: the LAION predictor needs local CLIP ViT-L/14 and "
                    "head weights (use the `quality` scorer for an offline score)"
                )
            if not Path(value).exists():
                raise InputError(f"scorers.aesthetic.{key}: {value} does not exist")
        if not Path(cfg.clip_path).is_dir():
            raise InputError(f"scorers.aesthetic.clip_path: {cfg.clip_path} is not a directory")
        if not Path(cfg.head_path).is_file():
            raise InputError(f"scorers.aesthetic.head_path: {cfg.head_path} is not a file")

    def load(self) -> None:
        """Loads the head, CLIP and its image processor (done on first use; call it to fail early)."""
        if getattr(self, "_head", None) is not None:
            return
        import torch
        from transformers import AutoConfig, CLIPImageProcessor, CLIPVisionModelWithProjection

        cfg = self.config
        head = build_head(load_head_state(cfg.head_path), cfg.head_path)  # small: checked first
        try:
            config = AutoConfig.from_pretrained(cfg.clip_path, local_files_only=True)
        except Exception as exc:  # no config.json, bad json
            raise InputError(
                f"scorers.aesthetic.clip_path: no CLIP config in {cfg.clip_path} ({exc})"
            ) from None
        if config.model_type == "clip":  # a full CLIPModel: load its vision tower and projection only
            vision_config = config.vision_config
            vision_config.projection_dim = config.projection_dim
        elif config.model_type == "clip_vision_model":
            vision_config = config
        else:
            raise InputError(
                f"scorers.aesthetic.clip_path: {cfg.clip_path} holds a {config.model_type!r} model, not CLIP"
            )
        width, dim = head[0].in_features, vision_config.projection_dim
        if width != dim:
            raise InputError(
                f"scorers.aesthetic: the head {cfg.head_path} takes {width}-d embeddings but the CLIP in "
                f"{cfg.clip_path} gives {dim}-d (the LAION head needs ViT-L/14, 768-d)"
            )
        try:
            with quiet_transformers():  # the text tower's weights are skipped on purpose: no report
                model, info = CLIPVisionModelWithProjection.from_pretrained(
                    cfg.clip_path, config=vision_config, local_files_only=True, output_loading_info=True
                )
                processor = CLIPImageProcessor.from_pretrained(cfg.clip_path, local_files_only=True)
        except Exception as exc:  # missing weight files, weights that do not fit the config
            raise InputError(
                f"scorers.aesthetic.clip_path: cannot load CLIP from {cfg.clip_path} ({exc})"
            ) from None
        require_all_weights(info, f"scorers.aesthetic.clip_path: {cfg.clip_path} lacks CLIP vision weights")
        device = torch.device(cfg.device)
        self._model = model.to(device).eval()
        self._processor = processor
        self._head = head.to(device)

    def embed(self, frames: np.ndarray):
        """L2-normalised CLIP image embeddings (N, d) of RGB uint8 frames: a float32 torch tensor on CPU."""
        import torch

        self.load()
        out = []
        device = next(self._model.parameters()).device
        for i in range(0, len(frames), self.config.batch_size):
            batch = list(frames[i : i + self.config.batch_size])
            pixels = self._processor(images=batch, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                emb = self._model(pixel_values=pixels.to(device, self._model.dtype)).image_embeds.float()
            out.append(torch.nn.functional.normalize(emb, dim=-1).cpu())
        return torch.cat(out)

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """The LAION aesthetic score of each RGB uint8 frame, (N,) float64."""
        import torch

        if len(frames) == 0:
            return np.zeros(0)
        emb = self.embed(frames)
        with torch.inference_mode():
            scores = self._head(emb.to(next(self._head.parameters()).device)).squeeze(-1).cpu()
        return scores.double().numpy()

    def score(self, clip: ClipSamples) -> dict:
        scores = self.predict(clip.frames[spread(len(clip.frames), self.config.frames)])
        if not len(scores):
            return {f"aesthetic_{k}": None for k in ("score", "min", "max")} | {"aesthetic_frames": 0}
        return {
            "aesthetic_score": float(scores.mean()),
            "aesthetic_min": float(scores.min()),
            "aesthetic_max": float(scores.max()),
            "aesthetic_frames": len(scores),
        }
