"""Result shapes: a value against the ``TypedDict`` that declares it (``airflow_provider_cplugin.results``).

A module of its own (imported as ``result_shapes``, the tests folder is on the path) because several folders have a
``conftest.py``: ``from conftest import ...`` resolves to whichever one was imported first in a whole-suite run.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any


def shape_problems(value: Any, typed: type, where: str = "") -> list[str]:
    """How ``value`` differs from the ``TypedDict`` ``typed`` (``airflow_provider_cplugin.results``): missing
    required keys, keys it does not declare, recursively through fields typed as a TypedDict, a list of them, a
    dict of them, or one of them or None."""
    if not isinstance(value, dict):
        return [f"{where or typed.__name__}: {type(value).__name__}, not a dict"]
    keys = set(value)
    required, optional = set(typed.__required_keys__), set(typed.__optional_keys__)  # type: ignore[attr-defined]
    problems = [f"{where}{k}: missing" for k in sorted(required - keys)]
    problems += [f"{where}{k}: not in {typed.__name__}" for k in sorted(keys - required - optional)]
    hints = typing.get_type_hints(typed)
    for key in sorted(keys & set(hints)):
        problems += _nested_problems(value[key], hints[key], f"{where}{key}.")
    return problems


def _nested_problems(value: Any, hint: Any, where: str) -> list[str]:
    if typing.is_typeddict(hint):
        return shape_problems(value, hint, where)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and args and typing.is_typeddict(args[0]) and isinstance(value, list):
        return [p for i, item in enumerate(value) for p in shape_problems(item, args[0], f"{where}{i}.")]
    if origin is dict and len(args) == 2 and typing.is_typeddict(args[1]) and isinstance(value, dict):
        return [p for k, item in value.items() for p in shape_problems(item, args[1], f"{where}{k}.")]
    if origin in (typing.Union, types.UnionType) and value is not None:
        typed = [a for a in args if typing.is_typeddict(a)]
        return shape_problems(value, typed[0], where) if len(typed) == 1 else []
    return []


ShapeCheck = Callable[[Any, type], None]
