"""Captions for curated clips.

A captioner is a small class like a scorer: `name`, `version`, a typed `Config` model, and
`caption(clip, scores) -> str`, where `scores` are the clip's flat scores from the scorers ("motion_score").

- `NoCaptioner` ("none"): the empty caption; the training prompt is then the score suffix alone.
- `TemplateCaptioner` ("template", the offline default): one honest sentence built only from the scores, so it
  never claims what nobody measured. It reads `duration_seconds`, `borders_letterbox`, `borders_pillarbox`,
  the text coverage (the first of `text_coverage`, `text_area`, `text_score` present, percent of the frame),
  `motion_static` and `motion_score`, and says e.g. "A 4-second letterboxed animated clip with on-screen text
  and a lot of motion." Missing scores are left out of the sentence.
- `Qwen2VLCaptioner` ("qwen2vl"): Qwen2-VL (transformers `Qwen2VLForConditionalGeneration`) from a local
  directory, shown a few frames of the clip as images with a prompt asking for one paragraph about the action,
  greedy decoding.

The training prompt with the official score suffix is `anisora.prompts.training_prompt`.

torch and transformers are imported inside the Qwen2-VL adapter only.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field

from ..errors import InputError
from ..typed_config import Config
from .scorers.base import ClipSamples, Configured, spread


class CaptionerConfig(Config):
    """Base for captioner configs: plain data, from the `captions` options of the YAML config."""


class Captioner(Configured, ABC):
    Config: ClassVar[type[CaptionerConfig]] = CaptionerConfig

    @classmethod
    def section(cls) -> str:
        return "captions.options"

    @abstractmethod
    def caption(self, clip: ClipSamples, scores: dict) -> str:
        """One caption for the clip (may be empty)."""


class NoCaptioner(Captioner):
    name = "none"
    version = "1"
    thread_safe = True

    def caption(self, clip: ClipSamples, scores: dict) -> str:
        return ""


class TemplateConfig(CaptionerConfig):
    text_percent: float = 1.0
    """text coverage (% of the frame) from which the clip has "on-screen text"."""
    little_motion: float = 1.0
    """motion_score (480p px) below this: "little motion"."""
    lots_of_motion: float = 4.0
    """from this on: "a lot of motion"; between: "some motion"."""


_TEXT_KEYS = ("text_coverage", "text_area", "text_score")


def _number(scores: dict, key: str) -> float | None:
    value = scores.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value) if math.isfinite(value) else None


def _article(word: str) -> str:
    """The article: "An" before a vowel sound ("an 8-second", "an 11-second", "an animated"), else "A"."""
    digits = word.split("-")[0]
    if digits.isdigit():
        return "An" if digits.startswith("8") or digits in ("11", "18") else "A"
    return "An" if word[:1].lower() in "aeiou" else "A"


class TemplateCaptioner(Captioner):
    """One sentence from the scores only (see the module docstring for the keys it reads)."""

    name = "template"
    version = "1"
    Config = TemplateConfig
    thread_safe = True

    def caption(self, clip: ClipSamples, scores: dict) -> str:
        cfg = self.config
        words = []
        seconds = _number(scores, "duration_seconds")
        if seconds is not None and seconds > 0:
            words.append(f"{max(round(seconds), 1)}-second")
        if scores.get("borders_letterbox") is True:
            words.append("letterboxed")
        elif scores.get("borders_pillarbox") is True:
            words.append("pillarboxed")
        words += ["animated", "clip"]
        extras = []
        text = next((v for v in (_number(scores, k) for k in _TEXT_KEYS) if v is not None), None)
        if text is not None and text >= cfg.text_percent:
            extras.append("on-screen text")
        motion = _number(scores, "motion_score")
        if scores.get("motion_static") is True:
            extras.append("no motion")
        elif motion is not None:
            if motion < cfg.little_motion:
                extras.append("little motion")
            elif motion < cfg.lots_of_motion:
                extras.append("some motion")
            else:
                extras.append("a lot of motion")
        sentence = f"{_article(words[0])} {' '.join(words)}"
        if extras:
            sentence += " with " + " and ".join(extras)
        return sentence + "."


DEFAULT_QWEN_PROMPT = (
    "These images are frames of one animated clip, in order. Describe the clip in one paragraph for training "
    "a video generation model: the characters and how they look, what they do and how they move, the camera "
    "movement, and the setting. Do not mention subtitles, watermarks or that these are separate frames."
)
SYSTEM_PROMPT = "You are a helpful assistant."


class Qwen2VLConfig(CaptionerConfig):
    model_path: str = ""
    """required: local Qwen2-VL directory (save_pretrained layout, with tokenizer files)"""
    max_new_tokens: Annotated[int, Field(ge=1)] = 160
    frames: Annotated[int, Field(ge=1)] = 4
    """frames shown to the model, evenly spread over the clip's samples"""
    max_side: Annotated[int, Field(ge=28)] = 448
    """each frame is resized so its long side is at most this before the image processor"""
    prompt: str = DEFAULT_QWEN_PROMPT
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """auto: bfloat16 on CUDA, float32 otherwise"""


class Qwen2VLCaptioner(Captioner):
    """Qwen2-VL adapter. The frames go in as images (Qwen2-VL takes several images per turn); the prompt is
    Qwen2-VL's ChatML: system, then a user turn with one `<|vision_start|><|image_pad|><|vision_end|>` per
    frame followed by the prompt, then the assistant turn that the model completes.

    The inputs are built from the model directory's tokenizer (AutoTokenizer) and image processor
    (AutoImageProcessor) directly, doing what `Qwen2VLProcessor` does (each `<|image_pad|>` repeated
    grid_t * grid_h * grid_w / merge_size^2 times), because `Qwen2VLProcessor` cannot be built without
    torchvision in transformers 5.x: `ProcessorMixin` checks its `video_processor` against
    `transformers.VideoProcessorMixin`, which transformers only exports when torchvision imports, and the
    project does not depend on torchvision. The image processor falls back to its PIL backend.
    """

    name = "qwen2vl"
    version = "1"
    Config = Qwen2VLConfig
    uses_model = True

    def __init__(self, config: Qwen2VLConfig | None = None):
        super().__init__(config)
        path = self.config.model_path
        if not path:
            raise InputError("captions (qwen2vl): model_path is required (a local Qwen2-VL directory)")
        if not Path(path).is_dir():
            raise InputError(f"captions (qwen2vl): model_path {path} is not a directory")

    def load(self) -> None:
        """Loads the model, tokenizer and image processor (done on first use; call it to fail early)."""
        if getattr(self, "_model", None) is not None:
            return
        import torch
        from transformers import AutoImageProcessor, AutoTokenizer, Qwen2VLForConditionalGeneration

        from .scorers.aesthetic import quiet_transformers, require_all_weights

        cfg = self.config
        device = torch.device(cfg.device)
        if cfg.dtype == "auto":
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        else:
            dtype = getattr(torch, cfg.dtype)
        try:
            with quiet_transformers():  # e.g. the image processor's fallback to its PIL backend
                tokenizer = AutoTokenizer.from_pretrained(cfg.model_path, local_files_only=True)
                image_processor = AutoImageProcessor.from_pretrained(cfg.model_path, local_files_only=True)
                model, info = Qwen2VLForConditionalGeneration.from_pretrained(
                    cfg.model_path, dtype=dtype, local_files_only=True, output_loading_info=True
                )
        except Exception as exc:
            raise InputError(
                f"captions (qwen2vl): cannot load Qwen2-VL from {cfg.model_path} ({exc})"
            ) from None
        require_all_weights(info, f"captions (qwen2vl): {cfg.model_path} lacks weights")
        pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        if pad is None or pad == tokenizer.unk_token_id or pad != model.config.image_token_id:
            raise InputError(
                f"captions (qwen2vl): the tokenizer in {cfg.model_path} does not map <|image_pad|> to the "
                f"model's image token id {model.config.image_token_id} (got {pad})"
            )
        self._tokenizer = tokenizer
        self._image_processor = image_processor
        self._model = model.to(device).eval()
        # without them transformers 5 silently gives the image tokens 1-D text positions
        self._takes_token_types = "mm_token_type_ids" in inspect.signature(model.forward).parameters

    def frames(self, clip: ClipSamples) -> list[np.ndarray]:
        """The frames shown to the model: `frames` of the clip's samples, long side at most `max_side`."""
        import cv2

        out = []
        for i in spread(len(clip.frames), self.config.frames):
            frame = clip.frames[i]
            h, w = frame.shape[:2]
            scale = self.config.max_side / max(h, w)
            if scale < 1.0:
                frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            out.append(np.ascontiguousarray(frame))
        return out

    def inputs(self, clip: ClipSamples) -> dict:
        """The keyword arguments for `model.generate` for this clip: input_ids, attention_mask, pixel_values,
        image_grid_thw and (transformers 5) mm_token_type_ids."""
        self.load()
        frames = self.frames(clip)
        if not frames:
            raise InputError(f"{clip.source}: no frames to caption")
        vision = self._image_processor(images=frames, return_tensors="pt")
        merge = int(getattr(self._image_processor, "merge_size", 2))
        counts = [int(n) // merge**2 for n in vision["image_grid_thw"].prod(-1)]
        images = "".join(f"<|vision_start|>{'<|image_pad|>' * n}<|vision_end|>" for n in counts)
        text = (
            f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
            f"<|im_start|>user\n{images}{self.config.prompt}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
        tokens = self._tokenizer(text, return_tensors="pt", add_special_tokens=False)
        device = self._model.device
        inputs = {
            "input_ids": tokens["input_ids"].to(device),
            "attention_mask": tokens["attention_mask"].to(device),
            "pixel_values": vision["pixel_values"].to(device, self._model.dtype),
            "image_grid_thw": vision["image_grid_thw"].to(device),
        }
        if self._takes_token_types:  # transformers 5: marks image tokens (1) for the 3-D rotary positions
            image_token = self._model.config.image_token_id
            inputs["mm_token_type_ids"] = (inputs["input_ids"] == image_token).to(inputs["input_ids"].dtype)
        return inputs

    def caption(self, clip: ClipSamples, scores: dict) -> str:
        import torch

        inputs = self.inputs(clip)
        with torch.inference_mode():
            out = self._model.generate(
                **inputs, max_new_tokens=self.config.max_new_tokens, do_sample=False, num_beams=1
            )
        new = out[0, inputs["input_ids"].shape[1] :]
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        return " ".join(text.split())  # one paragraph


CAPTIONERS: dict[str, type[Captioner]] = {
    c.name: c for c in (NoCaptioner, TemplateCaptioner, Qwen2VLCaptioner)
}


def captioner_class(name: str) -> type[Captioner]:
    if name not in CAPTIONERS:
        raise InputError(
            f"captions.captioner: unknown captioner {name!r}; choose one of {', '.join(CAPTIONERS)}"
        )
    return CAPTIONERS[name]


def build_captioner(name: str, options: dict | None = None) -> Captioner:
    """The captioner called `name` ("none", "template", "qwen2vl") with its config from `options`."""
    return captioner_class(name).from_dict(options)
