"""The bottom floor of the library: the parameter error and the validators every module may use.

Nothing here imports from the rest of ``ltdd_utils``, so ``config``, ``data`` and the methods can all check
their arguments without importing each other.
"""
from __future__ import annotations

import difflib
from typing import Callable


class ConfigError(ValueError):
    """A parameter is unknown or has a value that is not allowed."""


def _fail(name, value, allowed):
    raise ConfigError(f"parameter {name!r} = {value!r} is not allowed: expected {allowed}")


def int_at_least(low: int, what: str = "") -> Callable:
    def check(name, v):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            _fail(name, v, f"an integer >= {low}{what}")
    return check


def number_at_least(low: float, what: str = "") -> Callable:
    def check(name, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= low:
            _fail(name, v, f"a number >= {low}{what}")
    return check


def positive_number(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        _fail(name, v, "a number > 0")


def rate(name, v):
    """A rate in [0, 1): noise rates, bias-conflicting ratios."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        _fail(name, v, "a rate in [0, 1)")


def area_range(name, v):
    """[low, high] area fractions of random resized crops."""
    if (not isinstance(v, (list, tuple)) or len(v) != 2 or any(isinstance(t, bool) or not isinstance(t, (int, float))
                                                                for t in v) or not 0 < v[0] <= v[1] <= 1):
        _fail(name, v, "[low, high] with 0 < low <= high <= 1, e.g. [0.08, 1]")


def one_of(*choices) -> Callable:
    def check(name, v):
        if v not in choices:
            hint = difflib.get_close_matches(str(v), [str(c) for c in choices], n=1)
            _fail(name, v, f"one of {list(choices)}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return check


def list_of(item_check: Callable, min_len: int = 1) -> Callable:
    def check(name, v):
        if not isinstance(v, (list, tuple)) or len(v) < min_len:
            _fail(name, v, f"a list of at least {min_len} item(s)")
        for i, x in enumerate(v):
            item_check(f"{name}[{i}]", x)
    return check


def optional(check: Callable) -> Callable:
    def wrapped(name, v):
        if v is not None:
            check(name, v)
    return wrapped


def a_string(name, v):
    if not isinstance(v, str):
        _fail(name, v, "a string")


def a_bool(name, v):
    if not isinstance(v, bool):
        _fail(name, v, "True or False")
