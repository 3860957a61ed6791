"""AniSora-open's ComfyUI custom nodes: link or copy this folder into ComfyUI/custom_nodes/ and install the
`anisora` package (with its `model` extra) into ComfyUI's Python. The nodes live in `anisora.comfy`."""

from anisora.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
