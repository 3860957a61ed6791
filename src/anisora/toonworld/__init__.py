"""ToonWorld: procedural cartoon episodes with exact ground truth (DESIGN.md section 5).

The names below load on first use.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "ACTIONS": "actions",
    "SCHEMA": "episode",
    "EpisodePlan": "episode",
    "ShotPlan": "shot",
    "ShotRenderer": "shot",
    "load_masks": "episode",
    "plan_episode": "episode",
    "render_episode": "episode",
    "write_episode": "episode",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
