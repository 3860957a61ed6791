"""Video and image I/O: probe, decode (timestamp resampling, downsizing, seeking), encode mp4, mux audio.

Frames at this boundary are uint8 RGB numpy arrays, (H, W, 3) per frame and (T, H, W, 3) per stack.
Every unusable file raises `anisora.errors.MediaError`; bad argument values raise `InputError`.
The names below load on first use (PyAV and numpy are not needed to import the package).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "Frame": "decode",
    "RawFrame": "decode",
    "VideoInfo": "info",
    "VideoWriter": "encode",
    "contact_sheet": "sheet",
    "frame_envelope": "audio",
    "iter_frames": "decode",
    "iter_raw_frames": "decode",
    "load_image": "images",
    "mux_audio": "audio",
    "playable": "encode",
    "probe": "info",
    "psnr": "compare",
    "read_frames": "decode",
    "save_image": "images",
    "write_video": "encode",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
