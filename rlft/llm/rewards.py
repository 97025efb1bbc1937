"""Reward functions for the ``rl`` stage: built-ins, plugins by spec, weights, and a contract check.

A reward function follows TRL's contract::

    def my_reward(prompts: list[str], completions: list[str], **columns) -> list[float | None]: ...

Every other dataset column arrives as a keyword argument (a list, one value per completion), plus TRL's
``completion_ids`` and ``trainer_state``. ``None`` means "this function does not score this example".

Built-ins: ``exact_match`` (completion equals a dataset column, ``answer`` or ``completion`` by default),
``regex_match`` (completion matches ``pattern``), ``length_penalty`` (minus the completion length over ``max_chars``),
``numeric_closeness`` (how near the completion's number is to the reference: a graded judge for numeric answers).
Plugins: ``pkg.module:fn`` or ``path/to/file.py:fn`` (resolved by :func:`rlft.core.plugins.resolve`, entry-point group
``rlft.rewards``). Every function is wrapped by :class:`CheckedReward`, so one that raises, returns the wrong number
of values, or returns NaN stops the run with a :class:`RewardError` naming it.

Example::

    fns, weights = build_rewards([RewardSpec(fn="exact_match"), RewardSpec(fn="length_penalty", weight=0.1)])
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from rlft.core import plugins
from rlft.core.errors import PluginError, RlftError
from rlft.llm.config import RewardSpec
from rlft.llm.model import _not_found

RewardFn = Callable[..., list[float | None]]


class RewardError(RlftError):
    """A reward function raised, returned the wrong number of values, or returned a non-finite value."""


def completion_text(completion: Any) -> str:
    """The text of a completion (a string, or TRL's conversational ``[{"role": ..., "content": ...}]``)."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def _reference(fn: str, column: str, columns: dict[str, Any]) -> list[Any]:
    """The reference column a scoring function compares with (``column``, else ``answer``, else ``completion``)."""
    name = column or next((c for c in ("answer", "completion") if c in columns), "")
    if name not in columns:
        raise PluginError(f"{fn} needs a reference column: none of {column or 'answer, completion'} is in the "
                          f"dataset (columns passed: {sorted(k for k in columns if k not in _TRL_KWARGS)}). "
                          "Set kwargs: {column: <name>} on the reward.")
    return list(columns[name])


def exact_match(prompts: list[Any], completions: list[Any], column: str = "", **columns: Any) -> list[float | None]:
    """1.0 where the stripped completion equals the reference column (``answer``, else ``completion``), else 0.0."""
    refs = _reference("exact_match", column, columns)
    return [float(completion_text(c).strip() == completion_text(r).strip()) for c, r in zip(completions, refs)]


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def numeric_closeness(prompts: list[Any], completions: list[Any], column: str = "", scale: float = 10.0,
                      **columns: Any) -> list[float | None]:
    """``exp(-|x - ref| / scale)`` for the first number ``x`` in the completion (1.0 when exact, 0.0 when there is no
    number): a graded score for numeric answers, so that two wrong answers are still ordered (a judge for ``label``)."""
    refs = _reference("numeric_closeness", column, columns)
    scores: list[float | None] = []
    for c, r in zip(completions, refs):
        found = _NUMBER.search(completion_text(c))
        scores.append(0.0 if found is None else math.exp(-abs(float(found.group()) - float(completion_text(r)))
                                                         / scale))
    return scores


def regex_match(prompts: list[Any], completions: list[Any], pattern: str = r".+", full: bool = True,
                **_: Any) -> list[float | None]:
    """1.0 where the completion matches ``pattern`` (the whole stripped completion when ``full``), else 0.0."""
    rx = re.compile(pattern)
    match = rx.fullmatch if full else rx.search
    return [float(match(completion_text(c).strip()) is not None) for c in completions]


def length_penalty(prompts: list[Any], completions: list[Any], max_chars: int = 100, **_: Any) -> list[float | None]:
    """``-len(completion) / max_chars``: weigh it small to prefer short answers."""
    return [-len(completion_text(c)) / max_chars for c in completions]


BUILTIN_REWARDS: dict[str, Any] = {
    "exact_match": exact_match,
    "regex_match": regex_match,
    "length_penalty": length_penalty,
    "numeric_closeness": numeric_closeness,
    "game_outcome": "rlft.bridges.game_text.reward:game_outcome",  # a move played in a real game env (docs/game_llm.md)
}
_TRL_KWARGS = {"completion_ids", "trainer_state", "prompt_ids", "log_extra", "log_metric", "environments"}


class CheckedReward:
    """Calls a reward function and enforces the contract: no exception, one finite value (or None) per completion."""

    def __init__(self, fn: RewardFn, spec: str, name: str) -> None:
        self.fn = fn
        self.spec = spec
        self.__name__ = name  # TRL logs rewards/<__name__>/mean

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
        try:
            values = self.fn(prompts, completions, **columns)
        except RlftError:
            raise
        except Exception as e:
            raise RewardError(f"The reward function '{self.spec}' raised {type(e).__name__}: {e}. Fix it (it is "
                              "called as fn(prompts, completions, **columns)); the run folder is intact.") from e
        try:
            values = list(values)
        except TypeError as e:
            raise RewardError(f"The reward function '{self.spec}' returned {type(values).__name__}, not a list of "
                              "floats (one per completion).") from e
        if len(values) != len(completions):
            raise RewardError(f"The reward function '{self.spec}' returned {len(values)} values for "
                              f"{len(completions)} completions; it must return exactly one value (or None) per "
                              "completion.")
        out: list[float | None] = []
        for i, v in enumerate(values):
            if v is None:
                out.append(None)
                continue
            try:
                x = float(v)
            except (TypeError, ValueError) as e:
                raise RewardError(f"The reward function '{self.spec}' returned {v!r} (a {type(v).__name__}) for "
                                  f"completion {i}; rewards must be numbers or None.") from e
            if not math.isfinite(x):
                raise RewardError(f"The reward function '{self.spec}' returned {x} for completion {i} "
                                  f"({completion_text(completions[i])!r}); rewards must be finite numbers.")
            out.append(x)
        return out


def resolve_reward(spec: RewardSpec) -> CheckedReward:
    """A reward function for ``spec.fn`` with its ``kwargs`` bound, wrapped in :class:`CheckedReward`."""
    fn = plugins.resolve(spec.fn, kind="reward function", builtins=BUILTIN_REWARDS, group="rlft.rewards")
    if not callable(fn):
        raise PluginError(f"The reward function '{spec.fn}' resolved to a {type(fn).__name__}, not a function.")
    if spec.kwargs:
        fn = functools.partial(fn, **spec.kwargs)
    name = re.sub(r"\W+", "_", spec.fn.rsplit(":", 1)[-1]).strip("_") or "reward"
    return CheckedReward(fn, spec.fn, name)


def reward_function(spec: RewardSpec) -> Any:
    """The plain function a reward spec names (no kwargs bound, not wrapped): for capabilities it offers."""
    return plugins.resolve(spec.fn, kind="reward function", builtins=BUILTIN_REWARDS, group="rlft.rewards")


def load_reward_model(path: str, what: str = "rl.rewards[].model") -> tuple[Any, Any]:
    """A sequence-classification reward model and its tokenizer (right padding, as TRL expects).

    A causal LM folder loads too: its trunk with a new, randomly initialised one-output head (``reward_model``).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
        tok = AutoTokenizer.from_pretrained(path)
    except Exception as e:
        raise PluginError(_not_found(path, what, e).replace("causal LM", "reward model")) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    tok.padding_side = "right"
    return model, tok


def build_rewards(specs: Sequence[RewardSpec]) -> tuple[list[Any], list[float], list[Any]]:
    """(reward functions or models, weights, reward tokenizers) ready for TRL's ``reward_funcs`` arguments."""
    if not specs:
        raise PluginError("rl.rewards is empty: the rl stage needs at least one reward function or model.")
    funcs: list[Any] = []
    tokenizers: list[Any] = []
    names: set[str] = set()
    for spec in specs:
        if spec.model:
            model, tok = load_reward_model(spec.model)
            funcs.append(model)
            tokenizers.append(tok)
            continue
        fn = resolve_reward(spec)
        base, k = fn.__name__, 2
        while fn.__name__ in names:  # two terms of the same function get distinct TensorBoard names
            fn.__name__ = f"{base}_{k}"
            k += 1
        names.add(fn.__name__)
        funcs.append(fn)
        tokenizers.append(None)
    return funcs, [s.weight for s in specs], tokenizers


def combined_reward(funcs: Sequence[Any], weights: Sequence[float], prompts: list[Any], completions: list[Any],
                    **columns: Any) -> list[float]:
    """The weighted sum TRL optimises (None counts as 0), for evaluation outside a trainer. Functions only."""
    total = [0.0] * len(completions)
    for fn, w in zip(funcs, weights):
        if not callable(fn) or hasattr(fn, "forward"):
            continue  # reward models are scored inside the trainer only
        for i, v in enumerate(fn(prompts, completions, **columns)):
            total[i] += w * (v or 0.0)
    return total
