"""What makes shot detection hard, laid over an episode's planned shots: fights (large moves on every
drawing, animated on twos) and flash frames (1-2 flat white or black frames inside a shot, as at an impact).
Neither is a cut.

Effects come from the episode's own random stream (seed, index, EFFECTS_KEY), drawn after the shots are
planned, so the shots themselves (and every shot planned outside an episode: training, held-out) are drawn
exactly as before; a shot without effects renders byte for byte as it did.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .actions import MOVES_ACROSS, ActionPlan
from .shot import FLASH_LEVELS, CastMember, Flash, ShotPlan

EFFECTS_KEY = 2**31 - 2  # next to episode.OPENING_KEY
FIGHT_SHARE = 0.15  # of the shots whose characters stay in place
FLASH_SHARE = {True: 0.7, False: 0.1}  # of fights, of other moving shots
FLASH_MARGIN = 3  # frames between a flash and the shot's ends or fades
FLASH_GAP = 6  # frames at least between two flashes


def add_effects(plan: ShotPlan, rng: np.random.Generator) -> ShotPlan:
    """The shot, maybe turned into a fight, maybe with flashes. Static shots stay still."""
    if plan.static:
        return plan
    fight = plan.label not in MOVES_ACROSS and rng.random() < FIGHT_SHARE
    if fight:
        plan = _fight(plan, rng)
    if rng.random() < FLASH_SHARE[fight]:
        plan = dataclasses.replace(plan, flashes=_flashes(plan, rng))
    return plan


def _fight(plan: ShotPlan, rng: np.random.Generator) -> ShotPlan:
    """Every character fights (two face each other), drawn on twos."""
    duration = plan.num_frames / plan.fps
    cast = [
        CastMember(m.character, ActionPlan.sample("fighting", duration, m.character.height, rng))
        for m in plan.cast
    ]
    return dataclasses.replace(plan, label="fighting", cast=cast, drawing_step=2)


def _flashes(plan: ShotPlan, rng: np.random.Generator) -> list[Flash]:
    first = plan.fade_in + FLASH_MARGIN
    last = plan.num_frames - plan.fade_out - FLASH_MARGIN - 2  # the latest start of a 2-frame flash
    if last < first:
        return []
    count = min(int(rng.integers(1, 4)), last - first + 1)
    flashes: list[Flash] = []
    for start in np.sort(rng.choice(np.arange(first, last + 1), size=count, replace=False)).tolist():
        length = 1 if rng.random() < 0.6 else 2
        color = str(rng.choice(list(FLASH_LEVELS), p=(0.7, 0.3)))
        if not flashes or start >= flashes[-1].start + flashes[-1].length + FLASH_GAP:
            flashes.append(Flash(start, length, color))
    return flashes
