"""ToonWorld: procedural cartoon episodes with exact ground truth (DESIGN.md section 5)."""

from .actions import ACTIONS
from .episode import SCHEMA, EpisodePlan, load_masks, plan_episode, render_episode, write_episode
from .shot import ShotPlan, ShotRenderer

__all__ = [
    "ACTIONS",
    "SCHEMA",
    "EpisodePlan",
    "ShotPlan",
    "ShotRenderer",
    "load_masks",
    "plan_episode",
    "render_episode",
    "write_episode",
]
