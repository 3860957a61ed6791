"""Loading any still image as upright 8-bit RGB, safely, and saving RGB arrays as PNG or JPEG."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from anisora.errors import InputError, MediaError
from anisora.files import atomic_output, check_input_file

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_JPEG_QUALITY = 95


def load_image(
    path: str | os.PathLike[str],
    max_pixels: int = 50_000_000,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, the way a viewer would show it.

    - Refuses images over `max_pixels` from the header alone, before decoding: a small file can declare
      a huge size (a decompression bomb) and exhaust memory.
    - Applies the EXIF orientation (phone photos are stored sideways with a rotation tag).
    - Flattens transparency (alpha channel, or a palette/colour key marked transparent) onto `background`.
    - Converts grayscale, palette, CMYK and 16-bit images to 8-bit RGB (ICC profiles are not applied).
    Any unreadable, truncated or oversized file raises MediaError.
    """
    check_input_file(path)
    with _image_errors(path), Image.open(path) as image:
        _check_size(path, image.size, max_pixels)
        upright = ImageOps.exif_transpose(image)
        return np.array(_to_rgb(upright, background))


def save_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB array as PNG or JPEG (chosen by the suffix), atomically."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SAVE_FORMATS:
        raise InputError(f"cannot save {path}: use a .png, .jpg or .jpeg file name")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InputError(
            f"expected an (H, W, 3) uint8 RGB array, got shape {array.shape} dtype {array.dtype}"
        )
    options = {"quality": _JPEG_QUALITY} if _SAVE_FORMATS[suffix] == "JPEG" else {}
    with atomic_output(path) as tmp:
        try:
            Image.fromarray(array).save(tmp, format=_SAVE_FORMATS[suffix], **options)
        except OSError as error:
            raise MediaError(path, f"cannot write image: {error}") from error


@contextmanager
def _image_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn whatever Pillow raises on a malformed file into MediaError.

    Pillow's format plugins fail on bad data with many exception types (OSError, SyntaxError,
    struct.error, IndexError, ValueError ...), so everything but our own MediaError is wrapped.
    """
    try:
        yield
    except MediaError:
        raise
    except UnidentifiedImageError as error:
        raise MediaError(path, "not a readable image (unknown format)") from error
    except Image.DecompressionBombError as error:
        raise MediaError(path, f"image too large: {error}") from error
    except Exception as error:
        raise MediaError(path, f"corrupt or truncated image: {error}") from error


def _check_size(path: str | os.PathLike[str], size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise MediaError(
            path, f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Convert any Pillow mode to RGB, compositing transparent pixels over `background`."""
    if image.mode in _SIXTEEN_BIT_MODES:
        image = _to_8bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*background, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return image.convert("RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit grayscale to 8 bits; Pillow's own conversion clips everything above 255 to white."""
    values = np.asarray(image, dtype=np.float64)
    return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8))
