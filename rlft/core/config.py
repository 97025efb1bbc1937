"""The config system: typed dataclasses, YAML files, ``--set`` overrides, validation.

Precedence is defaults < YAML file < command line. Every config class is a plain dataclass whose fields carry a
docstring (below the field, as in CleanRL) and optional bounds given with :func:`param`. Loading validates the whole
tree: an unknown key, a value of the wrong type or one out of range raises :class:`~rlft.core.errors.ConfigError` naming
the key and where it came from (the file, or the ``--set`` flag).

Example::

    cfg = load_config("configs/cartpole.yaml", ["finetune.total_timesteps=20000"])
    cfg.finetune.total_timesteps  # 20000
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import operator
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from rlft.core.errors import ConfigError

T = TypeVar("T")


def param(
    default: Any = dataclasses.MISSING,
    *,
    factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A dataclass field with optional numeric bounds, checked when a config is loaded.

    Example: ``lr: float = param(3e-4, gt=0)``.
    """
    meta = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------------------------
# Building typed configs from plain data
# --------------------------------------------------------------------------------------------------------------


class Origins:
    """Remembers where each dotted key came from, so errors can name the file or the ``--set`` flag."""

    def __init__(self, default: str) -> None:
        self.default = default
        self.by_key: dict[str, str] = {}

    def of(self, key: str) -> str:
        parts = key.split(".")
        for i in range(len(parts), 0, -1):
            hit = self.by_key.get(".".join(parts[:i]))
            if hit is not None:
                return hit
        return self.default


class _NotFinite(ConfigError):
    """A float value that is NaN or infinite (rejected for every float field)."""


def _show(value: Any) -> str:
    """``repr(value)`` for an error message, cut to 80 characters (and safe for an int too long to print)."""
    try:
        text = repr(value)
    except ValueError:  # an int of more than 4300 digits
        return f"<an int of {value.bit_length()} bits>"
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, origins: Origins) -> Any:
    """Check ``value`` against the annotation ``tp``; convert where lossless (int -> float, '3e-4' -> float)."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(
            f"Config key '{key}' (from {origins.of(key)}) has the wrong type: expected {expected}, got "
            f"{type(value).__name__} {_show(value)}. Fix the value in that file or pass --set {key}=<value>."
        )

    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, origins)
            except ConfigError as e:
                errors.append(e)
        for err in errors:  # a number of the right type but NaN / inf: say that, not "wrong type"
            if isinstance(err, _NotFinite):
                raise err
        raise fail(" or ".join(_type_name(a) for a in args))
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"Config key '{key}' (from {origins.of(key)}) must be one of {list(choices)}, got {_show(value)}."
            )
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise fail(f"a list of {_type_name(get_args(tp)[0])}")
        (item_tp,) = get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]", origins) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail("a mapping")
        _, val_tp = get_args(tp)
        return {str(k): _coerce(v, val_tp, f"{key}.{k}", origins) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # type: ignore[arg-type]
            return value
        if not isinstance(value, dict):
            raise fail(f"a mapping of {_type_name(tp)} fields")
        return build(tp, value, key, origins)  # type: ignore[arg-type]
    result = _coerce_scalar(value, tp, fail)
    if isinstance(result, float) and not math.isfinite(result):  # a YAML .nan / .inf, or the string "nan" / "inf"
        raise _NotFinite(
            f"Config key '{key}' (from {origins.of(key)}) must be a finite number, got {_show(value)}. Fix the value "
            f"in that file or pass --set {key}=<number>."
        )
    return result


def _coerce_scalar(value: Any, tp: Any, fail: Any) -> Any:
    """bool / int / float / str checks (``fail(expected)`` builds the error)."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail("an integer")
    if tp is float:
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                raise fail("a number small enough for a float") from None
        elif isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise fail("a number")
        return number  # possibly nan / inf: _coerce rejects those with their own message
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                return str(value)
            except ValueError:  # an int of more digits than Python converts to text
                pass
        raise fail("a string")
    return value


_BOUNDS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<="), "lt": (operator.lt, "<")}


def bounds_problem(value: Any, meta: Any) -> str | None:
    """Why ``value`` breaks the bounds in a field's metadata (e.g. ``"must be >= 1"``), or None when it keeps them.

    Never raises: a value that is not a number has no bounds to break (its type is checked elsewhere), and a float
    that is NaN or infinite is reported as such instead of being compared.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    for name, limit in meta.items():
        if name in _BOUNDS:
            check, word = _BOUNDS[name]
            if not check(value, limit):
                return f"must be {word} {limit}"
    return None


def _check_bounds(value: Any, field: dataclasses.Field[Any], key: str, origins: Origins) -> None:
    problem = bounds_problem(value, field.metadata)
    if problem:
        raise ConfigError(f"Config key '{key}' (from {origins.of(key)}) is out of range: {_show(value)} {problem}.")


def build(cls: type[T], data: dict[str, Any], prefix: str, origins: Origins) -> T:
    """Build and validate ``cls`` from plain data; ``prefix`` is its dotted key (for error messages).

    A class may declare ``renamed: ClassVar[dict[str, str]]`` (old field name -> new one) so an old key in a user's
    config gets an error naming the new key.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = f"{prefix}.{raw_key}" if prefix else str(raw_key)
        if raw_key not in fields:
            known = ", ".join(sorted(fields))
            renamed = getattr(cls, "renamed", {}).get(raw_key)
            if renamed:
                new = f"{prefix}.{renamed}" if prefix else renamed
                raise ConfigError(f"Config key '{key}' (from {origins.of(key)}) was renamed: it is now '{new}'. "
                                  "Rename it in that file (or in your --set flag).")
            raise ConfigError(
                f"Unknown config key '{key}' (from {origins.of(key)}). Valid keys here are: {known}. "
                "Check the spelling, or run `rlft config --show` to print every key with its default."
            )
        kwargs[raw_key] = _coerce(value, hints[raw_key], key, origins)
        _check_bounds(kwargs[raw_key], fields[raw_key], key, origins)
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"Config section '{prefix or '<root>'}' (from {origins.default}) is incomplete: {e}.") from e
    # Defaults are checked too, so a bad default is caught by the tests rather than at run time.
    for name, f in fields.items():
        if name not in kwargs:
            _check_bounds(getattr(obj, name), f, f"{prefix}.{name}" if prefix else name, origins)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as e:
            raise ConfigError(f"Config section '{prefix or '<root>'}' (from {origins.default}): {e}") from e
    return obj


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``a.b=value`` into the dotted key and a YAML-parsed value (``true`` -> bool, ``[1,2]`` -> list)."""
    if "=" not in text:
        raise ConfigError(f"Bad override '--set {text}': expected KEY=VALUE, e.g. --set finetune.total_timesteps=5000.")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"Bad override '--set {text}': the key is empty.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: an int of more digits than Python converts
        value = raw
    return key, value


def set_dotted_key(data: dict[str, Any], key: str, value: Any, what: str) -> None:
    """Set ``a.b.c`` in a nested dict (in place), creating missing sections; ``what`` names the source in errors."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{what}: '{part}' in '{key}' is not a config section.")
        node = child
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str], origins: Origins | None = None) -> dict[str, Any]:
    """Write ``--set`` overrides into a nested dict (in place) and return it."""
    for text in overrides:
        key, value = parse_override(text)
        set_dotted_key(data, key, value, f"Bad override '--set {text}'")
        if origins is not None:
            origins.by_key[key] = f"the command line (--set {text})"
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; a missing file or a non-mapping is a ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file '{p}' does not exist. Pass a path to a YAML file, e.g. configs/cartpole.yaml.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: also bytes that are not UTF-8 text
        raise ConfigError(f"Config file '{p}' is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"Config file '{p}' must hold a mapping of keys to values at the top level.")
    return data


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<dict>", overrides: list[str] | None = None) -> T:
    """Build and validate a config dataclass from plain data plus ``--set`` overrides."""
    origins = Origins(source)
    data = apply_overrides(dict(data), overrides or [], origins)
    return build(cls, data, "", origins)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load ``cls`` from a YAML file (optional) and ``--set`` overrides, validating every key."""
    data = read_yaml(path) if path is not None else {}
    return from_dict(cls, data, source=f"config file '{path}'" if path else "defaults", overrides=overrides)


def check_flag(cls: type, name: str, value: Any, flag: str, key: str | None = None) -> Any:
    """Check a command-line flag's value against the type and bounds of the config field ``cls.name``.

    So a flag and the config key it stands for accept the same values: ``check_flag(RecordConfig, "episodes", -3,
    "--episodes", "record.episodes")`` raises ConfigError "--episodes -3 is out of range: it must be >= 1 ...".
    Returns the (coerced) value.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    origins = Origins(f"the command line ({flag})")
    value = _coerce(value, typing.get_type_hints(cls)[name], key or name, origins)
    problem = bounds_problem(value, fields[name].metadata)
    if problem:
        same = f" (the same bound as the config key '{key}')" if key else ""
        raise ConfigError(f"{flag} {_show(value)} is out of range: it {problem}{same}. Pass a valid {flag}.")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as plain data (for YAML/JSON)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any, path: str | Path) -> None:
    """Write a resolved config to YAML (readable back with :func:`load_config`)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a config dataclass (read from the source), for ``rlft config --show``."""

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs
