"""Shared machinery for frozen, validated config dataclasses.

Every config in edgegnn (model cards, training settings, later compression passes and
targets) is a frozen dataclass that validates itself in `__post_init__` and round-trips
through `to_dict` / `from_dict`. Unknown keys and wrong types are errors that name the
key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from edgegnn.errors import ConfigError

C = TypeVar("C")


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, (tuple, list))
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _describe(annotation: Any) -> str:
    """'allowed: a, b' for a Literal, else 'expected int | None' and the like."""
    if typing.get_origin(annotation) is typing.Literal:
        return "allowed: " + ", ".join(map(str, typing.get_args(annotation)))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return "expected " + " | ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(annotation))
    return "expected " + getattr(annotation, "__name__", str(annotation))


def config_from_dict(cls: type[C], data: dict[str, Any] | None, *, source: str | None = None) -> C:
    """Build the frozen config `cls` from a plain dict, rejecting unknown keys and bad types."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise ConfigError(key, data[key], f"unknown key; allowed: {', '.join(sorted(fields))}",
                              source=source)
    for key, value in data.items():
        annotation = hints[key]
        if not _type_ok(value, annotation):
            raise ConfigError(key, value, _describe(annotation), source=source)
        if typing.get_origin(annotation) is tuple and isinstance(value, list):
            data[key] = tuple(value)
        elif annotation is float and isinstance(value, int):
            data[key] = float(value)
    try:
        return cls(**data)
    except ConfigError as error:
        if source is None or error.source is not None:
            raise
        raise ConfigError(error.field, error.value, error.allowed, source=source) from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (tuples become lists, for YAML/JSON)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("path", str(path), "no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError("yaml", str(path), f"not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError("yaml", str(path), "the file must hold a mapping of keys to values")
    return data


def check_range(section: str, field: str, value: float, *, low: float | None = None,
                high: float | None = None, low_open: bool = False, high_open: bool = False) -> None:
    """Raise ConfigError (field named `section.field`) unless low (<|<=) value (<|<=) high."""
    bad = (low is not None and (value <= low if low_open else value < low)) or \
          (high is not None and (value >= high if high_open else value > high))
    if bad:
        lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
        hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise ConfigError(f"{section}.{field}", value, f"must satisfy {lo}{field}{hi}")


def check_choice(section: str, field: str, value: Any, choices: typing.Iterable[Any]) -> None:
    """Raise ConfigError (field named `section.field`) unless value is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{section}.{field}", value, f"allowed: {', '.join(map(str, choices))}")
