"""The bench's task names: a module of its own so that the CLI's parser can offer them without importing
bench files' schema (pydantic, the model's request types) on every command."""

from __future__ import annotations

from typing import Literal, get_args

Task = Literal["i2v", "interpolation", "region", "motion", "t2v"]
TASKS = get_args(Task)
