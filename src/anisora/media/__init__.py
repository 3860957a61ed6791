"""Video and image I/O: probe, decode (timestamp resampling, downsizing, seeking), encode mp4, mux audio.

Frames at this boundary are uint8 RGB numpy arrays, (H, W, 3) per frame and (T, H, W, 3) per stack.
Every unusable file raises `anisora.errors.MediaError`; bad argument values raise `InputError`.
"""

from .audio import frame_envelope, mux_audio
from .compare import psnr
from .decode import Frame, RawFrame, iter_frames, iter_raw_frames, read_frames
from .encode import VideoWriter, playable, write_video
from .images import load_image, save_image
from .probe import VideoInfo, probe
from .sheet import contact_sheet

__all__ = [
    "Frame",
    "RawFrame",
    "VideoInfo",
    "VideoWriter",
    "contact_sheet",
    "frame_envelope",
    "iter_frames",
    "iter_raw_frames",
    "load_image",
    "mux_audio",
    "playable",
    "probe",
    "psnr",
    "read_frames",
    "save_image",
    "write_video",
]
