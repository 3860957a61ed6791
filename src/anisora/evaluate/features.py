"""Frame feature extractors for the consistency metrics: `embed(frames) -> (N, d)` L2-normalised float32 rows.

- `HistogramThumbnailFeatures`: the offline default, no weights: colour histogram + thumbnail (classical).
- `DinoFeatures`: a DINO / DINOv2 ViT from a local transformers directory (VBench's subject-consistency model
  is DINO ViT-B/16); feature = the CLS token of the last hidden state (after the final layer norm).
- `ClipFeatures`: a CLIP from a local transformers directory (VBench's background consistency uses CLIP
  ViT-B/32); image and text embeddings (the projected ones).
- `DreamSimFeatures`: DreamSim (VBench's I2V-background model). The `dreamsim` package needs torchvision,
  which does not import with our torch, so the adapter takes a torch module with DreamSim's interface.

Weights are always local (`local_files_only=True`): nothing is downloaded. torch and transformers are
imported on first use only.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..curate.scorers.aesthetic import quiet_transformers, require_all_weights
from ..errors import InputError


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


class FeatureExtractor:
    name: str
    version: str
    weights: str

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """(N, d) float32 unit rows for (N, H, W, 3) uint8 RGB frames."""
        raise NotImplementedError


class HistogramThumbnailFeatures(FeatureExtractor):
    """Offline default, no weights. f = [sqrt(h) / |sqrt(h)|, t / |t|] / sqrt(2), where h is the `bins`^3 RGB
    colour histogram and t the frame resized to `thumb` x `thumb` (INTER_AREA) with pixels mapped to [-1, 1].
    So cos(f_a, f_b) = (Bhattacharyya coefficient of the colour histograms + cosine of the thumbnails) / 2:
    1 for identical frames, lower as colours or layout change. Captures no semantics, unlike DINO or CLIP."""

    name = "histogram_thumbnail"
    version = "1"

    def __init__(self, bins: int = 8, thumb: int = 16):
        if bins < 1 or 256 % bins or thumb < 1:
            raise InputError(
                f"histogram features: bins must divide 256 and thumb be >= 1, got {bins}, {thumb}"
            )
        self.bins, self.thumb = bins, thumb
        self.weights = (
            f"none (classical: {bins}x{bins}x{bins} RGB histogram, Bhattacharyya"
            f" + {thumb}x{thumb} thumbnail cosine)"
        )

    def embed(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([self._features(frame) for frame in frames])  # frame by frame: bounded memory

    def _features(self, frame: np.ndarray) -> np.ndarray:
        q = (frame >> (8 - int(np.log2(self.bins)))).astype(np.int64)
        index = (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]
        hist = np.bincount(index.ravel(), minlength=self.bins**3)
        thumb = cv2.resize(frame, (self.thumb, self.thumb), interpolation=cv2.INTER_AREA)
        thumb = thumb.ravel().astype(np.float64) / 127.5 - 1.0
        return normalise(np.concatenate([normalise(np.sqrt(hist)), normalise(thumb)]))


class _TransformersFeatures(FeatureExtractor):
    """Shared loading: config, model and image processor from a local directory, batched inference."""

    version = "1"
    model_types: tuple[str, ...] = ()  # config.model_type values a subclass accepts
    model_class, expected = "AutoModel", "a model"  # transformers class to load; what the error asks for

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 16):
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(f"{self.name} features: {self.path} is not a directory (save_pretrained layout)")
        self.device, self.batch_size = device, batch_size
        self.weights = str(self.path)
        self._model = None

    def _load_processor(self):
        from transformers import AutoImageProcessor

        if not (self.path / "preprocessor_config.json").is_file():
            raise InputError(f"{self.name} features: {self.path} has no preprocessor_config.json")
        return AutoImageProcessor.from_pretrained(self.path, local_files_only=True)

    def load(self) -> None:
        """Load the model once, after checking its config names one of `model_types`."""
        if self._model is not None:
            return
        import transformers

        try:
            config = transformers.AutoConfig.from_pretrained(self.path, local_files_only=True)
        except Exception as exc:
            raise InputError(f"{self.name} features: no model config in {self.path} ({exc})") from None
        if config.model_type not in self.model_types:
            raise InputError(
                f"{self.name} features: {self.path} holds a {config.model_type!r} model, not {self.expected}"
            )
        self._load(getattr(transformers, self.model_class), config)

    def _load(self, model_class, config=None):
        try:
            with quiet_transformers():
                model, info = model_class.from_pretrained(
                    self.path, config=config, local_files_only=True, output_loading_info=True
                )
                processor = self._load_processor()
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{self.name} features: cannot load {self.path} ({exc})") from None
        require_all_weights(info, f"{self.name} features: {self.path} lacks weights")
        self._model, self._processor = model.to(self.device).eval(), processor

    def _images(self, frames: np.ndarray, forward) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(frames), self.batch_size):
            with quiet_transformers():
                pixels = self._processor(images=list(frames[i : i + self.batch_size]), return_tensors="pt")
            pixels = pixels["pixel_values"].to(self.device, self._model.dtype)
            with torch.inference_mode():
                out.append(forward(pixels).float().cpu().numpy())
        return normalise(np.concatenate(out))


class DinoFeatures(_TransformersFeatures):
    """DINO (ViTModel, e.g. a copy of facebook/dino-vitb16) or DINOv2 (Dinov2Model) from a local directory
    with its preprocessor_config.json; feature = CLS token of `last_hidden_state`."""

    name = "dino"
    model_types = ("vit", "dinov2", "dinov2_with_registers", "dinov3_vit")
    model_class, expected = "AutoModel", "a DINO ViT"

    def embed(self, frames: np.ndarray) -> np.ndarray:
        self.load()
        return self._images(frames, lambda px: self._model(pixel_values=px).last_hidden_state[:, 0])


def _pooled(out):
    """transformers 5 returns model outputs from get_*_features (projection in pooler_output), 4 a tensor."""
    return out if hasattr(out, "ndim") else out.pooler_output


class ClipFeatures(_TransformersFeatures):
    """CLIPModel from a local directory (with preprocessor_config.json, and tokenizer files for text):
    L2-normalised projected image embeddings (`embed`) and text embeddings (`embed_text`)."""

    name = "clip"
    model_types = ("clip",)
    model_class, expected = "CLIPModel", "CLIPModel"

    def embed(self, frames: np.ndarray) -> np.ndarray:
        self.load()
        return self._images(frames, lambda px: _pooled(self._model.get_image_features(pixel_values=px)))

    def embed_text(self, texts: list[str]) -> np.ndarray:
        import torch
        from transformers import AutoTokenizer

        self.load()
        if getattr(self, "_tokenizer", None) is None:
            try:
                with quiet_transformers():
                    self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            except Exception as exc:
                raise InputError(f"clip features: no tokenizer in {self.path} ({exc})") from None
        limit = self._model.config.text_config.max_position_embeddings
        tokens = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        with torch.inference_mode():
            out = self._model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
        return normalise(_pooled(out).float().cpu().numpy())


class DreamSimFeatures(FeatureExtractor):
    """DreamSim embeddings from a torch module with DreamSim's interface: `module.embed(x)` (or `module(x)`)
    maps x, (N, 3, S, S) float32 RGB in [0, 1] (frames resized to S x S bicubic, S = 224 as DreamSim's
    preprocessing), to (N, d). Build it with `DreamSimFeatures(model)` where `dreamsim` works, or load a
    `torch.export` archive of it with `DreamSimFeatures.from_path("dreamsim.pt2")` (export a wrapper whose
    forward calls `embed`, with a dynamic batch dimension)."""

    name = "dreamsim"
    version = "1"

    def __init__(
        self, module, image_size: int = 224, device: str = "cpu", batch_size: int = 16, weights: str = ""
    ):
        if not (hasattr(module, "embed") or callable(module)):
            raise InputError("dreamsim features: the module must have an `embed` method or be callable")
        self.module, self.image_size, self.device, self.batch_size = module, image_size, device, batch_size
        self.weights = weights or f"torch module {type(module).__name__}"

    @classmethod
    def from_path(cls, path: str | Path, **kwargs) -> DreamSimFeatures:
        import torch

        path = Path(path)
        if not path.is_file():
            raise InputError(f"dreamsim features: {path} is not a file (a torch.export .pt2 archive)")
        try:
            module = torch.export.load(str(path)).module()
        except Exception as exc:
            raise InputError(f"dreamsim features: {path} is not a torch.export archive ({exc})") from None
        return cls(module, weights=str(path), **kwargs)

    def embed(self, frames: np.ndarray) -> np.ndarray:
        import torch

        size = (self.image_size, self.image_size)
        call = getattr(self.module, "embed", self.module)
        out = []
        for i in range(0, len(frames), self.batch_size):
            batch = np.stack(
                [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames[i : i + self.batch_size]]
            )
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255.0).to(self.device)
            with torch.inference_mode():
                out.append(call(x).float().reshape(len(batch), -1).cpu().numpy())
        return normalise(np.concatenate(out))


DEFAULT_FEATURES = HistogramThumbnailFeatures
