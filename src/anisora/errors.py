"""Errors a user can cause. The CLI prints them in one line and exits non-zero, never a traceback."""


class AnisoraError(Exception):
    """Base class for every error caused by input (bad paths, files, values)."""


class MediaError(AnisoraError):
    """A video, audio or image file cannot be used: missing, empty, truncated, not media, no video stream."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class InputError(AnisoraError):
    """A value given by the user is out of range or inconsistent."""
