"""Datasets for the LLM stages: local files, ``save_to_disk`` folders, and generated tasks for offline demos.

Every loader returns a :class:`datasets.Dataset` with a ``prompt`` and ``completion`` column (renamed from the
configured columns; other columns are kept, since reward functions receive them as keyword arguments), checked
once here rather than deep inside a trainer.

The generated ``addition`` task: prompt ``a+b=`` with a, b in 0..99, completion the decimal sum (``op: "-"`` gives
differences, ``"+-"`` a mix; ``prompt_template`` phrases it, e.g. as a question for an instruction model). Its 10,000
(a, b) pairs are split once (a fixed permutation) into 9,000 ``train`` and 1,000 ``test`` pairs, so held-out
evaluation never sees a training problem.

Conversational data (TRL's format) is kept as it is: ``prompt`` / ``completion`` holding lists of
``{"role", "content"}`` messages, or one ``messages`` column, which is split into the conversation up to the last
assistant turn (``prompt``) and that turn (``completion``). :func:`as_chat` turns plain-text examples into that form
for a tokenizer with a chat template, so TRL renders them with the model's own template.

Example::

    ds = load_examples(LLMDataConfig(source="data/qa.jsonl", prompt_column="question", completion_column="answer"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rlft.core import plugins
from rlft.core.errors import DatasetError
from rlft.core.plugins import dataset_table
from rlft.llm.config import LLMDataConfig

GENERATED_TASKS = ("addition",)
_FILE_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def addition_problems(split: str) -> np.ndarray:
    """The (a, b) pairs of the ``addition`` task's ``train`` (9,000) or ``test`` (1,000) split."""
    if split not in ("train", "test"):
        raise DatasetError(f"The generated task 'addition' has splits 'train' and 'test', not '{split}'.")
    order = np.random.default_rng(20_241_126).permutation(100 * 100)
    ids = order[1000:] if split == "train" else order[:1000]
    return np.stack([ids // 100, ids % 100], axis=1)


def generate_addition(size: int, split: str, wrong_fraction: float, seed: int, op: str = "+",
                      prompt_template: str = "{a}{op}{b}=") -> dict[str, list[Any]]:
    """``size`` arithmetic examples; a ``wrong_fraction`` share get a wrong completion (another number in range).

    The ``answer`` column always holds the correct result (for exact-match rewards); ``correct`` says whether the
    completion is right. ``op`` is ``+``, ``-`` or ``+-`` (each example draws one).
    """
    rng = np.random.default_rng(seed)
    pairs = addition_problems(split)[rng.integers(0, 1000 if split == "test" else 9000, size)]
    wrong = rng.random(size) < wrong_fraction
    ops = rng.choice(list(op), size) if len(op) > 1 else [op] * size
    prompts, completions, answers = [], [], []
    for (a, b), bad, sign in zip(pairs, wrong, ops):
        total = int(a + b) if sign == "+" else int(a - b)
        low = 0 if sign == "+" else -99
        shown = total
        if bad:
            shown = int(rng.integers(low, low + 198))
            shown += shown >= total  # any number of the 199 in range except the result
        prompts.append(prompt_template.format(a=a, op=sign, b=b))
        completions.append(str(shown))
        answers.append(str(total))
    return {"prompt": prompts, "completion": completions, "answer": answers, "correct": [not w for w in wrong]}


def load_examples(cfg: LLMDataConfig, seed: int = 0, *, need_completion: bool = True, what: str = "data") -> Any:
    """Load ``cfg`` as a ``datasets.Dataset`` with ``prompt`` (and ``completion``) columns; errors name the file."""
    ds = _load_raw(cfg, seed, what)
    if cfg.source in GENERATED_TASKS:
        pass
    elif "messages" in ds.column_names and cfg.prompt_column not in ds.column_names:
        ds = split_messages(ds, cfg.source, what)
    else:
        ds = rename_columns(ds, cfg, cfg.source, need_completion=need_completion, what=what)
    return with_system(ds, cfg.system) if cfg.system else ds


def with_system(ds: Any, system: str) -> Any:
    """Every prompt as a conversation opening with the system message ``system`` (replacing one it has; completions
    as assistant turns)."""

    def add(row: dict[str, Any]) -> dict[str, Any]:
        prompt = row["prompt"] if is_conversation(row["prompt"]) else [{"role": "user", "content": str(row["prompt"])}]
        out: dict[str, Any] = {"prompt": [{"role": "system", "content": system},
                                          *[m for m in prompt if m.get("role") != "system"]]}
        if "completion" in row and not is_conversation(row["completion"]):
            out["completion"] = [{"role": "assistant", "content": str(row["completion"])}]
        return out

    return ds.map(add)


def is_conversation(value: Any) -> bool:
    """True for TRL's conversational form: a list of ``{"role": ..., "content": ...}`` dicts."""
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def split_messages(ds: Any, source: str, what: str) -> Any:
    """A ``messages`` dataset as ``prompt`` (the turns before the last assistant turn) + ``completion`` (that turn)."""

    def split(row: dict[str, Any]) -> dict[str, Any]:
        messages = row["messages"]
        if not is_conversation(messages) or messages[-1].get("role") != "assistant" or len(messages) < 2:
            raise DatasetError(f"The {what} '{source}' has a `messages` row that is not a conversation ending with an "
                               f"assistant turn: {str(messages)[:200]}. Each row needs e.g. [{{role: user, content: "
                               "...}, {role: assistant, content: ...}].")
        return {"prompt": messages[:-1], "completion": messages[-1:]}

    return ds.map(split, remove_columns=["messages"])


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer carries a chat template (instruction models do; rlft's tiny models do not)."""
    return bool(getattr(tokenizer, "chat_template", None))


def as_chat(ds: Any, tokenizer: Any) -> Any:
    """Plain-text ``prompt`` (and ``completion``) as user (and assistant) messages, when ``tokenizer`` has a chat
    template; TRL then renders them with the model's own template. Conversational or template-less: unchanged."""
    if not has_chat_template(tokenizer) or not len(ds) or is_conversation(ds[0]["prompt"]):
        return ds

    def wrap(row: dict[str, Any]) -> dict[str, Any]:
        out = {"prompt": [{"role": "user", "content": str(row["prompt"])}]}
        if "completion" in row:
            out["completion"] = [{"role": "assistant", "content": str(row["completion"])}]
        return out

    return ds.map(wrap)


def _load_raw(cfg: LLMDataConfig, seed: int, what: str) -> Any:
    import datasets

    if cfg.source in GENERATED_TASKS:
        return datasets.Dataset.from_dict(generate_addition(cfg.size, cfg.split, cfg.wrong_fraction, cfg.seed + seed,
                                                            cfg.op, cfg.prompt_template))
    path = Path(cfg.source)
    if plugins.is_dataset_name(cfg.source):
        table = datasets.Dataset.from_dict(dataset_table(cfg.source))
        return table.select(range(min(cfg.limit, len(table)))) if cfg.limit else table
    if not path.exists():
        raise DatasetError(
            f"The {what} source '{cfg.source}' is neither a generated task ({', '.join(GENERATED_TASKS)}) nor an "
            "existing file or folder, nor a dataset an installed package offers (entry points 'rlft.datasets'). Give a "
            ".jsonl/.csv/.parquet/.txt file or a `datasets.save_to_disk` folder.")
    try:
        if path.is_dir():
            ds: Any = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if cfg.split not in ds:
                    raise DatasetError(f"The dataset folder '{path}' has splits {list(ds)}, not '{cfg.split}'; "
                                       f"set {what}.split.")
                ds = ds[cfg.split]
        elif path.suffix.lower() == ".txt":  # plain text: one document per non-empty line
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            ds = datasets.Dataset.from_dict({cfg.text_column: lines})
        else:
            fmt = _FILE_FORMATS.get(path.suffix.lower())
            if fmt is None:
                raise DatasetError(f"The {what} file '{path}' has an unknown format; use one of "
                                   f"{', '.join(_FILE_FORMATS)}, .txt or a `save_to_disk` folder.")
            ds = datasets.load_dataset(fmt, data_files=str(path), split="train")
    except DatasetError:
        raise
    except Exception as e:  # a corrupt file: pyarrow / json errors of many kinds
        raise DatasetError(f"Cannot read the {what} '{path}': {type(e).__name__}: {e}") from e
    if cfg.limit:
        ds = ds.select(range(min(cfg.limit, len(ds))))
    return ds


def rename_columns(ds: Any, cfg: LLMDataConfig, source: str, *, need_completion: bool, what: str) -> Any:
    """Rename the configured prompt/completion columns to ``prompt``/``completion``; a missing one is an error."""
    wanted = {cfg.prompt_column: "prompt"}
    if need_completion:
        wanted[cfg.completion_column] = "completion"
    for column, role in wanted.items():
        if column not in ds.column_names:
            raise DatasetError(
                f"The {what} '{source}' has no {role} column '{column}' (its columns: {ds.column_names}). "
                f"Set {what}.{role}_column to the column that holds the {role}.")
    renames = {c: r for c, r in wanted.items() if c != r}
    clashes = [r for r in renames.values() if r in ds.column_names]
    if clashes:
        ds = ds.remove_columns(clashes)
    return ds.rename_columns(renames) if renames else ds


def corpus_texts(cfg: LLMDataConfig, seed: int = 0, what: str = "corpus") -> list[str]:
    """Raw texts for pretraining / tokenizer training: the text column, else prompt + completion joined."""
    ds = _load_raw(cfg, seed, what)
    if cfg.text_column in ds.column_names:
        return [str(t) for t in ds[cfg.text_column]]
    ds = rename_columns(ds, cfg, cfg.source, need_completion=True, what=what) if cfg.source not in GENERATED_TASKS \
        else ds
    return [f"{p}{c}" for p, c in zip(ds["prompt"], ds["completion"])]
