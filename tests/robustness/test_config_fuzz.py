"""Fuzzing the config loader: any data, any ``--set`` override gives a valid config or a ConfigError -- nothing else.

Random key paths (every real key of the pipeline config, real keys with junk below them, junk keys) get random values
of random types (ints, floats with NaN / inf, strings such as "nan" or "1e400", lists, mappings, None, bools). They go
to :func:`pipeline_from_dict` as data, as ``--set`` overrides, and through the real command line
(``rlft config --set KEY=VALUE``: exit code 0 or 2, never a traceback).

The default run takes a few seconds; ``pytest -m slow tests/robustness`` runs the same properties on many more examples.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlft.cli.main import main
from rlft.core.errors import ConfigError
from rlft.pipeline.config import PipelineConfig, load_pipeline, pipeline_from_dict, pipeline_to_dict
from rlft.pipeline.registry import BUILTIN_STAGES

ALL_STAGES = [f"stages=[{', '.join(BUILTIN_STAGES)}]"]
BASE = pipeline_to_dict(load_pipeline(None, ALL_STAGES))
"""Every key of every built-in stage's section, with its default."""


def _paths(data: dict[str, Any], prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    for key, value in data.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


def _get(path: tuple[Any, ...]) -> Any:
    node: Any = BASE
    for key in path:
        node = node[key]
    return node


REAL_PATHS = sorted(_paths(BASE), key=str)
NUMBER_PATHS = [p for p in REAL_PATHS if isinstance(_get(p), int | float) and not isinstance(_get(p), bool)]
"""The int and float keys: the ones with bounds, drawn more often."""

SPECIAL_STRINGS = ["nan", "NaN", "inf", "-inf", "Infinity", ".nan", ".inf", "-.inf", "1e400", "-1e400", "3e-4", "0",
                   "-1", "", " ", "true", "null", "~", "[1, 2]", "{a: 1}", "scratch", "previous", "cartpole", "a:b",
                   "x.py:f", "9" * 400]
"""Strings a user (or YAML 1.1) produces that parsers treat specially."""

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf]),
    st.text(max_size=12), st.sampled_from(SPECIAL_STRINGS),
)
special_numbers = st.sampled_from([math.nan, math.inf, -math.inf, "nan", "inf", "-inf", ".nan", "1e400", 0, -1, 0.0,
                                   -0.0, 1e-300, 10**400, True, None])
values = st.one_of(special_numbers, st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                                                 | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                                                 max_leaves=8))
junk_key = st.one_of(st.text(max_size=8),
                     st.sampled_from(["kind", "stages", "renamed", "init", "tuning", "__class__"]))
key_paths = st.one_of(
    st.sampled_from(NUMBER_PATHS),
    st.sampled_from(REAL_PATHS),
    st.tuples(st.sampled_from(REAL_PATHS), junk_key).map(lambda t: (*t[0], t[1])),
    st.lists(junk_key, min_size=1, max_size=3).map(tuple),
)

FUZZ = settings(max_examples=300, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow])
FUZZ_LONG = settings(max_examples=3000, deadline=None, database=None, print_blob=True,
                     suppress_health_check=[HealthCheck.too_slow])


def fuzz(strategy: Any) -> Callable[[Callable[..., None]], tuple[Callable[..., None], Callable[..., None]]]:
    """A property as two tests: the default run (few examples) and a ``slow`` one with many more."""

    def make(check: Callable[..., None]) -> tuple[Callable[..., None], Callable[..., None]]:
        return FUZZ(given(strategy)(check)), pytest.mark.slow(FUZZ_LONG(given(strategy)(check)))

    return make


def _set(data: dict[Any, Any], path: tuple[Any, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _valid_or_config_error(build: Callable[[], PipelineConfig]) -> None:
    try:
        cfg = build()
    except ConfigError as e:
        assert str(e)  # a message, not an empty error
        return
    assert isinstance(cfg, PipelineConfig)
    for section in cfg.sections.values():  # what loaded is usable: its floats are finite
        for name, value in vars(section).items():
            if isinstance(value, float):
                assert math.isfinite(value), (name, value)


def _text(value: Any, how: str) -> str:
    """A value as the text after ``KEY=`` in a ``--set`` flag: YAML flow style, Python's str(), or raw."""
    if how == "yaml":
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()
    return str(value)


changes = st.lists(st.tuples(key_paths, values), min_size=1, max_size=3)


def _check_data(args: tuple[list[tuple[tuple[Any, ...], Any]], bool]) -> None:
    items, from_empty = args
    data: dict[Any, Any] = {} if from_empty else copy.deepcopy(BASE)
    for path, value in items:
        _set(data, path, value)
    _valid_or_config_error(lambda: pipeline_from_dict(data, source="fuzz"))


test_pipeline_from_dict, test_pipeline_from_dict_long = fuzz(st.tuples(changes, st.booleans()))(_check_data)

numbers = st.one_of(special_numbers, st.floats(), st.integers(), st.text(alphabet="0123456789.e+-naifINF", max_size=8))


def _check_number_key(args: tuple[tuple[Any, ...], Any, str]) -> None:
    """One number key set to any number-like value (the bounds checker's inputs), as data and as ``--set``."""
    path, value, how = args
    data = copy.deepcopy(BASE)
    _set(data, path, value)
    _valid_or_config_error(lambda: pipeline_from_dict(data, source="fuzz"))
    flag = ".".join(path) + "=" + _text(value, how)
    _valid_or_config_error(lambda: pipeline_from_dict({}, source="fuzz", overrides=[*ALL_STAGES, flag]))


test_number_keys, test_number_keys_long = fuzz(st.tuples(st.sampled_from(NUMBER_PATHS), numbers,
                                                         st.sampled_from(["yaml", "str"])))(_check_number_key)

overrides = st.lists(st.tuples(key_paths, values, st.sampled_from(["yaml", "str"])).map(
    lambda t: ".".join(str(k) for k in t[0]) + "=" + _text(t[1], t[2]))
    | st.text(max_size=30), min_size=1, max_size=3)


def _check_overrides(items: list[str]) -> None:
    _valid_or_config_error(lambda: pipeline_from_dict({}, source="fuzz", overrides=[*ALL_STAGES, *items]))


test_set_overrides, test_set_overrides_long = fuzz(overrides)(_check_overrides)


def _check_cli(items: list[str]) -> None:
    argv = ["config"] + [f"--set={item}" for item in items]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own usage errors exit 2 too
            code = e.code
    assert code in (0, 2), (code, err.getvalue())
    assert "Traceback" not in err.getvalue()
    if code == 2:
        assert err.getvalue().strip(), "exit 2 without a message"


test_cli_config_set, test_cli_config_set_long = fuzz(overrides)(_check_cli)


@pytest.mark.parametrize("value", [".nan", "nan", ".inf", "-.inf", "inf", "-inf", "1e400", "9" * 400])
@pytest.mark.parametrize("key", ["finetune.learning_rate", "imitate.gamma", "finetune.stop_at", "sft.lr"])
def test_non_finite_floats_are_config_errors(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}'.*the command line.*finite|'{key}'.*float"):
        pipeline_from_dict({}, overrides=[*ALL_STAGES, f"{key}={value}"])
