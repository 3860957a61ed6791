"""The spatiotemporal mask module (AniSora paper section 2.1): from a request to the DiT's conditioning.

This is the one place the conditioning logic lives; generation and training both call `build_conditioning`.

Frames and latents. The 3D causal VAE compresses time by 4 (`TEMPORAL`): a clip of F = 4k+1 pixel frames has
T = k+1 latent frames; pixel frame 0 alone makes latent frame 0 and pixel frames 4j-3..4j make latent frame j.
Videos are 8k+1 frames (an odd T), the lengths CogVideoX's VAE decodes back exactly (`check_frame_count`).

Guides. Each guide image is fitted to the video size (resize to cover, then centre crop: the policy for images
of another aspect, reported in `Conditioning.notes`), VAE-encoded on its own as a one-frame clip (official V1)
and placed at its latent index in a guide sequence that is zero elsewhere. Two guides may not share a latent
frame. A guide's strength s in [0, 1] blends its latent frame between "guided" (s = 1, the official input) and
"unguided" (s = 0, zeros), and is the value its pixel frame gets in the mask.

Mask channels. A per-pixel-frame mask of length F (guide strength at guide frames, 0 elsewhere) is
re-projected as the official Wan-based AniSora models do: frame 0 is repeated 4 times (F + 3 = 4T frames) and
each group of 4 is folded onto the channel axis: 4 mask channels per latent frame at latent height x width.

Layouts. The DiT input is the channel concatenation [noisy latent, mask, guides] ("anisora": 16 + 4 + 16 = 36
channels for CogVideoX's 16-channel VAE) or [noisy latent, guides] (official V1, "v1": 32 channels).

Motion region (paper section 2.2). An optional spatial mask (white = may move) drawn on the first guide; it is
reduced to latent resolution by max-pooling (a latent cell may move when any of its pixels may), so at
inference the latent outside it can be pinned to the first guide's latent. The decoded video then gets the
first guide's own pixels outside the mask (`HeldRegion`): a pinned latent alone lets the decoder carry a
moving cell's change several pixels past the mask, and the max-pooled cells reach past it too.

Pinned guides. A full-strength guide at frame 0 is pinned too: the causal VAE encodes pixel frame 0 alone
into latent frame 0 and decodes it alone, so a guide's one-frame latent is exactly that frame's latent in any
clip, and pinning it gives the guide back as its VAE round trip. At other frames a one-frame latent is not
the latent of a 4-frame group, so those guides stay conditioning only (`Conditioning.pinned_latents`).

Known pixels (the `anisora_anymask` release, Wan). `KnownPixels` gives pixels at any frame and place: a
pixel video and a per-pixel mask (1 = given). The condition video holds the given pixels and zero (mid grey)
elsewhere, VAE-encoded as one video; the mask channels are the per-pixel-frame mask at latent height x width,
re-projected per latent cell as above (`reproject_pixel_mask`). A guide is the special case of a whole frame
with mask = strength; where a guide and known pixels give the same frame, the guide wins (`condition_video`).

Guides' interpolation (residual demo models). A model that predicts the clean latent's difference from its
guides' interpolation (`AnisoraPipeline` `residual_to_guides`) reads one of two: "latent", the guide latents
interpolated linearly over latent frames (a latent cross-fade); or "flow", the guide images interpolated along
their optical flow in pixels (`anisora.model.interpolation`), each frame scaled by the guides' strengths
interpolated the same way, and VAE-encoded as one video (`Conditioning.interpolated`; the pixels are kept as
`interpolated_video`, which the pipeline draws its output on: `AnisoraPipeline.__call__`'s `decode_change`).

Scores. The official models read motion and aesthetic scores from the prompt suffix
(`anisora.prompts.training_prompt`); models trained with a numeric motion embedding also get `motion_score`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..prompts import training_prompt

TEMPORAL = 4  # pixel frames per latent frame (after the first), and mask channels per latent frame
SPATIAL = 8  # pixels per latent cell along each side: every released VAE's (the demo model's own is 4)
PATCH = 2  # latent cells per transformer token along each side (the demo model's: 4)
FRAME_STEP = 2 * TEMPORAL  # video lengths are 8k+1: see check_frame_count
DEFAULT_AESTHETIC = 5.5  # the official models' aesthetic score, for the suffix when only motion is given
REGION_FEATHER = 3  # pixels inside a motion mask's edge over which the video fades into the held first guide
Layout = Literal["anisora", "v1"]
LAYOUTS: tuple[Layout, ...] = ("anisora", "v1")
Interpolation = Literal["latent", "flow"]
INTERPOLATIONS: tuple[Interpolation, ...] = ("latent", "flow")


def latent_index(frame: int) -> int:
    """Latent frame holding pixel frame `frame`: 0 for frame 0, else (frame - 1) // 4 + 1."""
    return 0 if frame == 0 else (frame - 1) // TEMPORAL + 1


def latent_frame_count(num_frames: int) -> int:
    check_frame_count(num_frames)
    return (num_frames - 1) // TEMPORAL + 1


def check_frame_count(num_frames: int, step: int = FRAME_STEP) -> None:
    """Raise unless `num_frames` is `step`k+1 (k >= 0), naming the valid counts on either side.

    4k+1 frames make k+1 latent frames. Wan's VAE decodes any of them (step 4), but CogVideoX's causal VAE
    decodes only an odd number of latent frames back to 4k+1 frames: its temporal upsampling keeps the first
    latent frame apart only then (two latent frames decode to 8 frames, not 5). So CogVideoX lengths (step 8,
    the default) are 1, 9, 17, 25, ... 49.
    """
    form = f"{step}k+1"
    if not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise InputError(f"frame count must be a positive integer of the form {form}, got {num_frames!r}")
    if (num_frames - 1) % step:
        below = num_frames - (num_frames - 1) % step
        why = "4 frames per latent frame after the first"
        if step == FRAME_STEP:
            why += ", and an odd number of latent frames for the VAE to decode"
        raise InputError(
            f"{num_frames} frames is not of the form {form} ({why}); use {below} or {below + step}"
        )


def frames_for_seconds(
    seconds: float, fps: float = 16.0, *, min_s: float = 2.0, max_s: float = 8.0, step: int = FRAME_STEP
) -> int:
    """The `step`k+1 frame count nearest to `seconds` at `fps` (2-8 s by default): 2 s at 16 fps -> 33
    frames."""
    if not (math.isfinite(seconds) and min_s <= seconds <= max_s):
        raise InputError(f"duration must be {min_s:g}-{max_s:g} s, got {seconds!r}")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be positive, got {fps!r}")
    return step * max(1, round(seconds * fps / step)) + 1


@dataclass(frozen=True)
class Guide:
    """A guide image (uint8 H x W x 3 RGB) to appear at pixel frame `frame` with `strength` in [0, 1]."""

    image: np.ndarray
    frame: int
    strength: float = 1.0


@dataclass(frozen=True)
class ConditionRequest:
    """What a caller asks for. `motion_mask` (H x W, white = may move) is drawn on the first guide."""

    num_frames: int
    height: int
    width: int
    guides: Sequence[Guide] = ()
    motion_mask: np.ndarray | None = None
    prompt: str = ""
    motion_score: float | None = None
    aesthetic_score: float | None = None
    default_aesthetic: float = DEFAULT_AESTHETIC  # the model's, for a suffix asked with a motion score alone
    prompt_suffix: str = ""  # the model's text after every prompt (AniSora V3: " There is no text ...")
    spatial: int = SPATIAL  # the model's VAE: pixels per latent cell along each side
    patch: int = PATCH  # the model's transformer: latent cells per token along each side
    interpolation: Interpolation = "latent"  # how a residual model's guides are interpolated (docstring)


@dataclass(frozen=True)
class HeldRegion:
    """What a motion mask keeps: the first guide's pixels outside the mask, in every frame."""

    pixels: torch.Tensor  # (1, 3, 1, H, W) in [-1, 1]: the fitted first guide
    weight: torch.Tensor  # (1, 1, 1, H, W): 1 inside the mask, 0 outside, a ramp over REGION_FEATHER pixels

    @classmethod
    def of(cls, image: np.ndarray, mask: np.ndarray) -> HeldRegion:
        """From the fitted first guide (H x W x 3 uint8) and the fitted motion mask (H x W bool)."""
        import cv2

        inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)  # to the nearest held pixel
        weight = np.clip(inside / REGION_FEATHER, 0, 1).astype(np.float32)
        pixels = torch.from_numpy(image.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)
        return cls(pixels[None, :, None], torch.from_numpy(weight)[None, None, None])

    def apply(self, video: torch.Tensor) -> torch.Tensor:
        """`video` (B, 3, F, H, W) in [-1, 1] with the held pixels outside the mask (diffusers' inpainting
        pipelines overlay their input image the same way, `VaeImageProcessor.apply_overlay`)."""
        pixels, weight = self.pixels.to(video), self.weight.to(video)
        return pixels + weight * (video - pixels)


@dataclass
class Conditioning:
    """Tensors in diffusers' CogVideoX layout (batch, latent frames, channels, height, width), batch 1."""

    guide_latents: torch.Tensor  # (1, T, C, h, w): guide latents at their latent index, zero elsewhere
    mask: torch.Tensor  # (1, T, 4, h, w): re-projected per-pixel-frame guide mask
    prompt: str  # the user's prompt with the official score suffix when scores were given
    motion_score: float | list[float] | None  # for models with a numeric motion embedding (list: a batch)
    region: torch.Tensor | None = None  # (1, 1, 1, h, w): 1 where the first guide's content may move
    region_latent: torch.Tensor | None = None  # (1, 1, C, h, w): the first guide's latent (region control)
    notes: list[str] = field(default_factory=list)  # what was adjusted (cropping), for the user
    pinned_frames: tuple[int, ...] = ()  # latent frames sampling pins to their guide's latent
    interpolated: torch.Tensor | None = None  # (1, T, C, h, w): the guides' "flow" interpolation, encoded
    interpolated_video: torch.Tensor | None = None  # (1, 3, F, H, W) in [-1, 1]: the same in pixels
    held: HeldRegion | None = None  # with a motion mask: the pixels the decoded video keeps outside it

    def pinned_latents(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(keep, reference) for sampling, or None when nothing is pinned: after each step the latent is
        keep x latent + (1 - keep) x the reference noised to the next step. Outside the motion region the
        reference is the first guide's latent; at a pinned frame, its guide's latent."""
        if self.region is None and not self.pinned_frames:
            return None
        keep = torch.ones_like(self.guide_latents[:, :, :1])
        reference = torch.zeros_like(self.guide_latents)
        if self.region is not None:
            keep = keep * self.region
            reference = self.region_latent.expand_as(reference).clone()
        for frame in self.pinned_frames:
            keep[:, frame] = 0
            reference[:, frame] = self.guide_latents[:, frame]
        return keep, reference

    def guide_interpolation(self) -> torch.Tensor:
        """(B, T, C, h, w): the guides' "flow" interpolation when the request asked for it (`interpolated`);
        else, at each latent frame, the guide latents interpolated linearly over latent frames between the
        nearest guided frames on either side (the nearest one's latent beyond the first or the last; zero
        without guides). A guide counts at the strength it was given (its latent is scaled by it). Between
        two keyframes this is a cross-fade in latent space; after a single first frame, a still."""
        if self.interpolated is not None:
            return self.interpolated
        guided = self.mask.amax(dim=(2, 3, 4)) > 0  # (B, T)
        base = torch.zeros_like(self.guide_latents)
        frames = torch.arange(guided.shape[1], dtype=torch.float32)
        for b in range(guided.shape[0]):
            known = frames[guided[b].cpu()]
            if not len(known):
                continue
            # for each frame, the last guided frame at or before it and the first at or after it (clamped)
            after = torch.searchsorted(known, frames).clamp(max=len(known) - 1)
            before = (torch.searchsorted(known, frames, right=True) - 1).clamp(min=0)
            lo, hi = known[before], known[after]
            weight = torch.where(hi > lo, (frames - lo) / (hi - lo).clamp(min=1), torch.zeros_like(frames))
            weight = weight.clamp(0, 1).to(base)[:, None, None, None]
            latents = self.guide_latents[b]
            base[b] = (1 - weight) * latents[lo.long()] + weight * latents[hi.long()]
        return base

    def model_input(self, noisy: torch.Tensor, layout: Layout) -> torch.Tensor:
        """The DiT input for `noisy` (B, T, C, h, w); the conditioning repeats over the batch."""
        batch = noisy.shape[0]
        guides = self.guide_latents.to(noisy.dtype).expand(batch, -1, -1, -1, -1)
        if layout == "v1":
            return torch.cat([noisy, guides], dim=2)
        mask = self.mask.to(noisy.dtype).expand(batch, -1, -1, -1, -1)
        return torch.cat([noisy, mask, guides], dim=2)


def stack_conditionings(conds: Sequence[Conditioning]) -> Conditioning:
    """One batched Conditioning from per-sample ones of the same shape (training batches)."""

    def cat(name: str) -> torch.Tensor | None:
        parts = [getattr(c, name) for c in conds]
        if all(p is None for p in parts):
            return None
        if any(p is None for p in parts):
            raise InputError(f"cannot batch samples with and without {name.replace('_', ' ')}")
        return torch.cat(parts)

    motion = [c.motion_score for c in conds]
    return Conditioning(
        cat("guide_latents"),
        cat("mask"),
        prompt="",  # per-sample prompts stay with the caller
        motion_score=None if any(m is None for m in motion) else motion,
        region=cat("region"),
        region_latent=cat("region_latent"),
        notes=[n for c in conds for n in c.notes],
        interpolated=cat("interpolated"),
    )


def input_channels(latent_channels: int, layout: Layout) -> int:
    """DiT input channels for a layout: 2C + 4 ("anisora") or 2C ("v1")."""
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return 2 * latent_channels + (TEMPORAL if layout == "anisora" else 0)


def layout_for(in_channels: int, latent_channels: int) -> Layout:
    """The layout a transformer with `in_channels` inputs was built for."""
    for layout in LAYOUTS:
        if input_channels(latent_channels, layout) == in_channels:
            return layout
    raise InputError(
        f"a transformer with {in_channels} input channels fits no layout for a {latent_channels}-channel"
        f" VAE (anisora: {input_channels(latent_channels, 'anisora')},"
        f" v1: {input_channels(latent_channels, 'v1')})"
    )


def fit_image(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, str | None]:
    """Resize to cover height x width, then centre-crop; returns the image and a note when it was cropped."""
    image = _rgb(image, "guide image")
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    rh, rw = max(height, round(h * scale)), max(width, round(w * scale))
    resized = np.asarray(Image.fromarray(image).resize((rw, rh), Image.Resampling.LANCZOS))
    top, left = (rh - height) // 2, (rw - width) // 2
    note = None
    if abs(w / h - width / height) > 0.01 * (width / height):
        lost = 100.0 * (1.0 - (height * width) / (rh * rw))
        note = f"{w}x{h} image centre-cropped to the video's {width}x{height} aspect ({lost:.0f}% of it cut)"
    return resized[top : top + height, left : left + width], note


def pixel_frame_mask(num_frames: int, guides: Sequence[tuple[int, float]]) -> np.ndarray:
    """Length-F mask: each guide's strength at its pixel frame, 0 elsewhere."""
    mask = np.zeros(num_frames, np.float32)
    for frame, strength in guides:
        mask[frame] = strength
    return mask


def reproject_mask(frame_mask: np.ndarray) -> np.ndarray:
    """Length-F pixel-frame mask -> (T, 4): frame 0 repeated 4 times, groups of 4 folded onto channels."""
    frame_mask = np.asarray(frame_mask, np.float32)
    if (len(frame_mask) - 1) % TEMPORAL:
        raise InputError(f"a frame mask of length {len(frame_mask)} is not 4k+1 frames")
    extended = np.concatenate([np.repeat(frame_mask[:1], TEMPORAL), frame_mask[1:]])
    return extended.reshape(-1, TEMPORAL)


def latent_region(mask: np.ndarray, height: int, width: int, spatial: int = SPATIAL) -> np.ndarray:
    """A pixel mask already at height x width (bool) -> latent cells that may move (max-pool over each cell of
    `spatial` x `spatial` pixels)."""
    h, w = height // spatial, width // spatial
    return mask[: h * spatial, : w * spatial].reshape(h, spatial, w, spatial).any(axis=(1, 3))


def build_conditioning(
    request: ConditionRequest,
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    latent_channels: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    encode_video: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Conditioning:
    """Validate `request` and build its conditioning.

    `encode` maps guide images (N, 3, 1, H, W) in [-1, 1] to scaled latents (N, C, 1, H/s, W/s), s being
    `request.spatial`: the pipeline passes its VAE, training may pass cached latents. All guides are encoded
    in one call. `encode_video` (default: `encode`) encodes the "flow" interpolation, (1, 3, F, H, W).
    """
    dtype = dtype or torch.float32
    check_request(request)
    num_frames, height, width = request.num_frames, request.height, request.width
    spatial = request.spatial
    t_lat, h_lat, w_lat = latent_frame_count(num_frames), height // spatial, width // spatial

    notes: list[str] = []
    pixels, images = [], []
    for guide in request.guides:
        fitted, note = fit_image(guide.image, height, width)
        if note:
            notes.append(f"guide at frame {guide.frame}: {note}")
        images.append(fitted)
        pixels.append(torch.from_numpy(fitted.copy()).permute(2, 0, 1).float() / 127.5 - 1.0)

    guide_latents = torch.zeros(1, t_lat, latent_channels, h_lat, w_lat, device=device, dtype=dtype)
    region = region_latent = held = None
    if pixels:
        batch = torch.stack(pixels).unsqueeze(2).to(device=device, dtype=dtype)  # (N, 3, 1, H, W)
        latents = encode(batch).permute(0, 2, 1, 3, 4).to(dtype)  # (N, 1, C, h, w)
        if tuple(latents.shape[2:]) != (latent_channels, h_lat, w_lat):
            raise InputError(
                f"the encoder returned latents of shape {tuple(latents.shape[2:])}, "
                f"expected {(latent_channels, h_lat, w_lat)}"
            )
        for guide, latent in zip(request.guides, latents, strict=True):
            guide_latents[0, latent_index(guide.frame)] = float(guide.strength) * latent[0]
        if request.motion_mask is not None:
            mask = fitted_motion_mask(request.motion_mask, request.guides[0].image, height, width, notes)
            cells = torch.from_numpy(latent_region(mask, height, width, spatial).astype(np.float32))
            region = cells.to(device=device, dtype=dtype)[None, None, None]
            region_latent = latents[:1]
            held = HeldRegion.of(images[0], mask)

    frame_mask = pixel_frame_mask(num_frames, [(g.frame, float(g.strength)) for g in request.guides])
    mask = torch.from_numpy(reproject_mask(frame_mask)).to(device=device, dtype=dtype)
    mask = mask[None, :, :, None, None].expand(1, t_lat, TEMPORAL, h_lat, w_lat).contiguous()

    interpolated = video = None
    if request.interpolation == "flow":  # zero without guides, as the latent one is
        interpolated = torch.zeros_like(guide_latents)
        if images:
            video = flow_interpolation(request.guides, images, num_frames).to(device=device, dtype=dtype)
            interpolated = (encode_video or encode)(video).permute(0, 2, 1, 3, 4).to(dtype)
    pinned = tuple(sorted({0 for g in request.guides if g.frame == 0 and g.strength >= 1}))
    return Conditioning(
        guide_latents,
        mask,
        conditioned_prompt(request),
        request.motion_score,
        region,
        region_latent,
        notes,
        pinned,
        interpolated,
        video,
        held,
    )


def flow_interpolation(
    guides: Sequence[Guide], images: Sequence[np.ndarray], num_frames: int
) -> torch.Tensor:
    """(1, 3, F, H, W) in [-1, 1]: the fitted guide `images` interpolated along their optical flow, each frame
    scaled by the guides' strengths interpolated linearly over frames (held beyond the first and last)."""
    from .interpolation import keyframe_video

    order = sorted(range(len(guides)), key=lambda i: guides[i].frame)
    frames = [int(guides[i].frame) for i in order]
    video = keyframe_video([images[i] for i in order], frames, num_frames) / 127.5 - 1.0
    strengths = np.interp(np.arange(num_frames), frames, [float(guides[i].strength) for i in order])
    video = video * strengths.astype(np.float32)[:, None, None, None]
    return torch.from_numpy(video).permute(3, 0, 1, 2)[None]


def conditioned_prompt(request: ConditionRequest) -> str:
    """The user's prompt with the official score suffix when a score was given, then the model's suffix."""
    prompt = " ".join(str(request.prompt or "").split())
    if request.motion_score is not None or request.aesthetic_score is not None:
        aesthetic = request.default_aesthetic if request.aesthetic_score is None else request.aesthetic_score
        motion = request.motion_score if request.motion_score is not None else 0.0
        prompt = training_prompt(prompt, aesthetic, motion)
    return (prompt + request.prompt_suffix).strip()


def check_request(request: ConditionRequest, frame_step: int = FRAME_STEP) -> None:
    """Raise InputError for anything the model cannot be asked: cheap, so callers run it before loading.
    `frame_step` is the backbone's frame rule (see `check_frame_count`)."""
    check_frame_count(request.num_frames, frame_step)
    for name in ("height", "width"):
        value = getattr(request, name)
        cell = request.spatial * request.patch
        if not isinstance(value, (int, np.integer)) or value < cell or value % cell:
            raise InputError(
                f"{name} must be a positive multiple of {cell} ({request.spatial}x VAE, "
                f"{request.patch}x{request.patch} patches), got {value!r}"
            )
    used: dict[int, int] = {}
    for guide in request.guides:
        if not isinstance(guide.frame, (int, np.integer)) or not 0 <= guide.frame < request.num_frames:
            raise InputError(
                f"guide frame {guide.frame!r} is outside the video: frames are 0-{request.num_frames - 1} "
                f"({request.num_frames} frames); give the last frame as {request.num_frames - 1}, not -1"
            )
        strength = float(guide.strength)
        if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
            raise InputError(
                f"guide at frame {guide.frame}: strength must be in [0, 1], got {guide.strength!r}"
            )
        index = latent_index(guide.frame)
        if index in used:
            first = (TEMPORAL * index - 3, TEMPORAL * index)  # index >= 1: frame 0 has latent 0 alone
            raise InputError(
                f"guides at frames {used[index]} and {guide.frame} share latent frame {index} (pixel frames "
                f"{first[0]}-{first[1]}); the VAE holds one guide per latent frame, so move one of them"
            )
        used[index] = guide.frame
    if request.interpolation not in INTERPOLATIONS:
        raise InputError(
            f"unknown guide interpolation {request.interpolation!r}; "
            f"choose one of {', '.join(INTERPOLATIONS)}"
        )
    if request.motion_mask is not None and not request.guides:
        raise InputError(
            "a motion mask needs a guide image: it marks which parts of the first guide may move"
        )
    for name in ("motion_score", "aesthetic_score"):
        value = getattr(request, name)
        if value is not None and not (
            isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
        ):
            raise InputError(f"{name.replace('_', ' ')} must be a finite number >= 0, got {value!r}")
    if request.motion_mask is not None:
        fitted_motion_mask(request.motion_mask, request.guides[0].image, request.height, request.width, [])


def fitted_motion_mask(
    mask: np.ndarray, guide_image: np.ndarray, height: int, width: int, notes: list[str]
) -> np.ndarray:
    """The motion mask at height x width (bool). It must be the first guide's size or the video's, or scale to
    one of them with the same aspect (within 1%); a mask at the guide's size is cropped like the guide."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2)
    if mask.ndim != 2 or mask.size == 0:
        raise InputError(f"motion mask must be a 2-D image (H x W, white = may move), got shape {mask.shape}")
    mh, mw = mask.shape
    gh, gw = guide_image.shape[:2]
    binary = (mask.astype(np.float32) >= (128 if mask.dtype == np.uint8 else 0.5)).astype(np.uint8) * 255
    if not binary.any():
        raise InputError("motion mask is empty: nothing may move (white marks where motion is allowed)")
    if _same_aspect((mh, mw), (gh, gw)) and (mh, mw) != (height, width):
        fitted, _ = fit_image(np.repeat(binary[..., None], 3, axis=2), height, width)
        return fitted[..., 0] >= 128
    if _same_aspect((mh, mw), (height, width)):
        if (mh, mw) != (height, width):
            notes.append(f"motion mask {mw}x{mh} scaled to the video's {width}x{height}")
        resized = Image.fromarray(binary).resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(resized) >= 128
    raise InputError(
        f"motion mask is {mw}x{mh} but the first guide image is {gw}x{gh} and the video is {width}x{height}: "
        "draw the mask on the guide image (same size) or at the video size"
    )


def _same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[1] / a[0] - b[1] / b[0]) <= 0.01 * (b[1] / b[0])


def _rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{what} must be H x W x 3 RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise InputError(f"{what} must be uint8 (0-255), got {image.dtype}")
    return np.ascontiguousarray(image[..., :3])


KnownMode = Literal["spatial", "temporal"]
KNOWN_MODES: tuple[KnownMode, ...] = ("spatial", "temporal")
KEYFRAME_STEP = 8  # official temporal anymask: pixel frames 0, 8, 16, ... are given whole


@dataclass(frozen=True)
class KnownPixels:
    """Pixels given at any frame and place (AniSora anymask): `video` F x H x W x 3 uint8 and `mask`
    F x H x W in [0, 1] (1 = given, 0 = to generate), F the frame count of the video to generate.

    `mode` adds an official anymask recipe to the mask: "temporal" (repair a video from its keyframes: pixel
    frames 0, 8, 16, ... are given whole, and the mask reaches latent resolution by bicubic resampling, as
    that script does) or "spatial" (regenerate a region: frame 0 is given whole; nearest). None: the mask as
    given, nearest.
    """

    video: np.ndarray
    mask: np.ndarray
    mode: KnownMode | None = None

    @property
    def resample(self) -> str:
        """How the mask reaches latent resolution (`latent_pixel_mask`)."""
        return "bicubic" if self.mode == "temporal" else "nearest"


def check_known(known: KnownPixels, num_frames: int) -> None:
    """Raise InputError unless `known` fits a video of `num_frames`: cheap, for checks before loading."""
    video, mask = np.asarray(known.video), np.asarray(known.mask)
    if video.ndim != 4 or video.shape[3] != 3 or 0 in video.shape:
        raise InputError(f"known-pixels video must be F x H x W x 3 RGB, got shape {video.shape}")
    if video.dtype != np.uint8:
        raise InputError(f"known-pixels video must be uint8 (0-255), got {video.dtype}")
    if mask.shape != video.shape[:3]:
        raise InputError(
            f"known-pixels mask must be F x H x W like its video, {video.shape[:3]}, got shape {mask.shape}"
        )
    if len(video) != num_frames:
        raise InputError(
            f"known-pixels video has {len(video)} frames but the video to generate has {num_frames}: "
            f"sample the reference video and its mask to {num_frames} frames"
        )
    if mask.dtype.kind not in "biuf" or (mask.dtype.kind == "f" and not np.isfinite(mask).all()):
        raise InputError(f"known-pixels mask must hold numbers in [0, 1], got {mask.dtype} values")
    if mask.min() < 0 or mask.max() > 1:
        raise InputError(
            f"known-pixels mask values must be in [0, 1] (1 = given), got {mask.min()}-{mask.max()}: "
            "threshold a mask video first (the official scripts take pixel values > 127 as given)"
        )
    if known.mode not in (None, *KNOWN_MODES):
        raise InputError(f"unknown known-pixels mode {known.mode!r}; choose one of {', '.join(KNOWN_MODES)}")


def fit_known(known: KnownPixels, height: int, width: int, notes: list[str]) -> KnownPixels:
    """`known` at height x width with its mode's whole frames given. Frames are fitted as guides are
    (`fit_image`: cover, centre crop); the mask takes the same crop with nearest resampling, so it stays as
    drawn. A crop is reported in `notes`."""
    video, mask = np.asarray(known.video), np.asarray(known.mask, np.float32)
    if video.shape[1:3] != (height, width):
        fitted = [fit_image(frame, height, width) for frame in video]
        video = np.stack([frame for frame, _ in fitted])
        mask = np.stack([_fit_plane(plane, height, width) for plane in mask])
        if fitted[0][1]:
            notes.append(f"known pixels: {fitted[0][1]}")
    else:
        mask = mask.copy()
    if known.mode == "temporal":
        mask[::KEYFRAME_STEP] = 1.0
    elif known.mode == "spatial":
        mask[0] = 1.0
    return KnownPixels(video, mask, known.mode)


def condition_video(
    num_frames: int, height: int, width: int, guides: Sequence[Guide], known: KnownPixels | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The pixel video a Wan-style VAE encodes as one video, and its per-pixel mask, from guides and known
    pixels already at height x width: (F, H, W, 3) float32 in [-1, 1], zero where nothing is given, and
    (F, H, W) float32. A known pixel with mask m > 0 is written as is and m goes to the mask (binary masks:
    video x mask, as the anymask release); a guide writes its whole frame with mask = its strength, winning
    over known pixels at that frame."""
    video = np.zeros((num_frames, height, width, 3), np.float32)
    mask = np.zeros((num_frames, height, width), np.float32)
    if known is not None:
        given = known.mask > 0
        video[given] = known.video[given].astype(np.float32) / 127.5 - 1.0
        mask[:] = known.mask
    for guide in guides:
        video[guide.frame] = guide.image.astype(np.float32) / 127.5 - 1.0
        mask[guide.frame] = float(guide.strength)
    return video, mask


def latent_pixel_mask(mask: np.ndarray, resample: str = "nearest") -> np.ndarray:
    """(F, H, W) pixel mask -> (F, H/8, W/8), resampled as the anymask scripts do (torch `interpolate`:
    "nearest" takes each cell's top-left pixel; "bicubic" blends across edges and may overshoot [0, 1])."""
    height, width = mask.shape[1:]
    planes = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[:, None]
    size = (height // SPATIAL, width // SPATIAL)
    return torch.nn.functional.interpolate(planes, size=size, mode=resample)[:, 0].numpy()


def reproject_pixel_mask(mask: np.ndarray) -> np.ndarray:
    """(F, h, w) per-pixel-frame mask -> (T, 4, h, w): `reproject_mask` for every latent cell."""
    mask = np.asarray(mask, np.float32)
    if (len(mask) - 1) % TEMPORAL:
        raise InputError(f"a frame mask of length {len(mask)} is not 4k+1 frames")
    extended = np.concatenate([np.repeat(mask[:1], TEMPORAL, axis=0), mask[1:]])
    return extended.reshape(-1, TEMPORAL, *mask.shape[1:])


def _fit_plane(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """A float plane resized to cover height x width (nearest) and centre-cropped: `fit_image`'s geometry."""
    h, w = plane.shape
    scale = max(height / h, width / w)
    rh, rw = max(height, round(h * scale)), max(width, round(w * scale))
    resized = np.asarray(Image.fromarray(plane).resize((rw, rh), Image.Resampling.NEAREST))
    top, left = (rh - height) // 2, (rw - width) // 2
    return resized[top : top + height, left : left + width]
