"""anisora.typed_config: every value a YAML file gives is checked against its field's annotation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pytest

from anisora.errors import InputError
from anisora.typed_config import POSITIVE, SHARE, Range, build


@dataclass(frozen=True)
class Inner:
    share: Annotated[float, SHARE] = 0.5


@dataclass(frozen=True)
class Example:
    flag: bool = False
    count: Annotated[int, Range(ge=1, le=10)] = 1
    rate: Annotated[float, POSITIVE] | None = None
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    size: tuple[int, int] = (2, 2)
    sides: tuple[int, ...] = ()
    items: list[str] = field(default_factory=list)
    anything: list = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    either: int | str = 0
    inner: Inner = field(default_factory=Inner)


def test_values_that_fit_are_kept():
    values = {
        "flag": True,
        "count": 10,
        "rate": 2,
        "name": "y",
        "mode": "b",
        "size": [4, 3],
        "sides": [1, 2, 3],
        "items": ["p", "q"],
        "anything": [[1, 2], "z"],
        "options": {"k": [1]},
        "either": "text",
        "inner": {"share": 1},
    }
    built = build(Example, values)
    assert built == Example(
        True, 10, 2, "y", "b", (4, 3), (1, 2, 3), ["p", "q"], [[1, 2], "z"], {"k": [1]}, "text", Inner(1)
    )
    assert build(Example, None) == Example() == build(Example, {"rate": None, "inner": None})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"flag": 1}, "flag: expected true or false, got 1"),
        ({"count": True}, "count: expected an integer, got True"),
        ({"count": 11}, "count: must be <= 10, got 11"),
        ({"rate": 0}, "rate: must be > 0, got 0"),
        ({"rate": float("nan")}, "rate: expected a finite number, got nan"),
        ({"rate": "1e-3"}, "write 2.0e-4, not 2e-4"),
        ({"name": 5}, "name: expected text, got 5"),
        ({"name": None}, "name: expected text, got None"),
        ({"mode": "c"}, "mode: expected one of 'a', 'b', got 'c'"),
        ({"size": [1, 2, 3]}, "size: expected 2 values, got 3"),
        ({"sides": [1, "two"]}, "sides[1]: expected an integer, got 'two'"),
        ({"items": "p"}, "items: expected a list, got 'p'"),
        ({"options": [1]}, "options: expected a mapping, got list"),
        ({"either": 1.5}, "either: expected an integer or text, got 1.5"),
        ({"inner": {"share": 2}}, "inner.share: must be <= 1, got 2"),
        ({"inner": {"shar": 1}}, "inner: unknown key(s) shar; known: share"),
        ({"colour": 1}, "config: unknown key(s) colour"),
    ],
)
def test_values_that_do_not_fit_are_one_line_errors(values, message):
    with pytest.raises(InputError) as caught:
        build(Example, values)
    assert message in str(caught.value) and "\n" not in str(caught.value)
