"""What a character does over a shot: an action plan turns time into a Pose.

Every random choice (phases, blink times, syllables) is drawn once when the plan is made, so a pose is a
pure function of time and frames can be rendered in any order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .character import Pose

ACTIONS = ("static", "idle", "talking", "waving", "walking", "running", "jumping", "fighting")
MOVES_ACROSS = ("walking", "running")
FIGHT_BEATS = 12  # key poses per second: on twos at 24 fps, every drawing is a new one
# a fight's key poses: (lunge as a share of the reach, body lift, left arm, right arm, left leg, right leg)
FIGHT_POSES = (
    (0.0, 0.0, (0.9, 2.2), (0.9, 2.2), -0.25, 0.25),  # guard
    (0.7, 0.0, (0.6, 2.0), (1.6, 0.0), -0.4, 0.3),  # jab
    (0.4, 0.6, (0.5, 1.8), (2.7, 0.2), -0.2, 0.5),  # uppercut
    (0.5, 0.3, (1.3, 0.6), (0.4, 1.5), -0.3, 1.4),  # kick
    (-0.6, -0.2, (0.5, 2.4), (0.5, 2.4), -0.5, 0.1),  # dodge back, crouched
    (1.0, 1.8, (2.0, 0.4), (1.2, 0.8), -0.7, 1.5),  # flying kick
)


@dataclass(frozen=True)
class ActionPlan:
    action: str
    phase: float
    rate: float  # cycles per second of the main movement
    sway_rate: float
    speed: float = 0.0  # world pixels per second along the facing direction
    blinks: tuple[float, ...] = ()  # start times of blinks, seconds
    syllables: tuple[tuple[float, float, float], ...] = field(default=())  # (start, end, openness)
    reach: float = 0.0  # fighting: world pixels of a full lunge
    moves: tuple[int, ...] = ()  # fighting: the key pose (FIGHT_POSES) of each beat

    @staticmethod
    def sample(action: str, duration: float, height: float, rng: np.random.Generator) -> ActionPlan:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; choose from {', '.join(ACTIONS)}")
        phase = float(rng.uniform(0, 2 * math.pi))
        rate = {
            "waving": rng.uniform(1.8, 2.8),
            "walking": rng.uniform(1.6, 2.2),
            "running": rng.uniform(3.0, 3.8),
            "jumping": rng.uniform(1.0, 1.5),
        }.get(action, 1.0)
        speed = {"walking": 0.35, "running": 0.9}.get(action, 0.0) * height * float(rng.uniform(0.8, 1.2))
        blinks: list[float] = []
        if action != "static":
            t = float(rng.uniform(0.2, 2.0))
            while t < duration:
                blinks.append(round(t, 4))
                t += float(rng.uniform(1.5, 4.0))
        syllables: list[tuple[float, float, float]] = []
        if action == "talking":
            t = float(rng.uniform(0.0, 0.3))
            while t < duration:
                length = float(rng.uniform(0.08, 0.22))
                syllables.append((round(t, 4), round(t + length, 4), round(float(rng.uniform(0.4, 1.0)), 3)))
                t += length + (
                    float(rng.uniform(0.3, 0.8)) if rng.random() < 0.15 else float(rng.uniform(0.02, 0.08))
                )
        plan = ActionPlan(
            action, phase, float(rate), float(rng.uniform(0.4, 0.9)), speed, tuple(blinks), tuple(syllables)
        )
        if action == "fighting":  # drawn last, so every other action draws exactly what it always drew
            moves = [int(rng.integers(len(FIGHT_POSES)))]
            for _ in range(math.ceil(duration * FIGHT_BEATS)):
                move = int(rng.integers(len(FIGHT_POSES) - 1))
                moves.append(move + (move >= moves[-1]))  # never the same pose twice in a row
            plan = replace(plan, reach=height * float(rng.uniform(0.3, 0.45)), moves=tuple(moves))
        return plan

    def pose(self, t: float) -> Pose:
        if self.action == "static":
            return Pose()
        pose = Pose(
            eyes_open=not any(b <= t < b + 0.12 for b in self.blinks),
            hair_sway=0.25 * math.sin(2 * math.pi * self.sway_rate * t + self.phase),
            bob=0.05 * math.sin(2 * math.pi * 0.3 * t + self.phase),  # breathing
        )
        w = 2 * math.pi * self.rate * t + self.phase
        if self.action == "talking":
            for start, end, openness in self.syllables:
                if start <= t < end:
                    pose.mouth = openness * math.sin(math.pi * (t - start) / (end - start))
                    break
            pose.nod = 0.08 * math.sin(2 * math.pi * 1.3 * t + self.phase)
        elif self.action == "waving":
            pose.arm_r = (2.6, 0.5 + 0.45 * math.sin(w))
        elif self.action in MOVES_ACROSS:
            swing = 0.45 if self.action == "walking" else 0.75
            pose.dx = self.speed * t
            pose.leg_l, pose.leg_r = swing * math.sin(w), -swing * math.sin(w)
            arm = 0.5 * swing * math.sin(w)
            elbow = 0.2 if self.action == "walking" else 1.2
            pose.arm_l, pose.arm_r = (0.15 - arm, elbow), (0.15 + arm, elbow)
            pose.bob += 0.12 * abs(math.cos(w)) * (2 if self.action == "running" else 1)
            pose.hair_sway += 0.3 * math.sin(w)
        elif self.action == "jumping":
            hop = abs(math.sin(w / 2))
            pose.bob += 1.6 * hop
            pose.arm_l = pose.arm_r = (0.4 + 2.0 * hop, 0.3)
            pose.leg_l, pose.leg_r = 0.4 * hop, -0.1 * hop
            pose.hair_sway -= 0.4 * hop
        elif self.action == "fighting":
            beat = min(int(t * FIGHT_BEATS + 1e-6), len(self.moves) - 1)
            lunge, lift, pose.arm_l, pose.arm_r, pose.leg_l, pose.leg_r = FIGHT_POSES[self.moves[beat]]
            pose.dx, pose.bob = lunge * self.reach, pose.bob + lift
            pose.hair_sway += 0.5 * lunge
        return pose
