"""Datasets for the LLM stages: local files, ``save_to_disk`` folders, and generated tasks for offline demos.

Every loader returns a :class:`datasets.Dataset` with a ``prompt`` and ``completion`` column (renamed from the
configured columns; other columns are kept, since reward functions receive them as keyword arguments), checked
once here rather than deep inside a trainer.

The generated ``addition`` task: prompt ``a+b=`` with a, b in 0..99, completion the decimal sum. Its 10,000
problems are split once (a fixed permutation) into 9,000 ``train`` and 1,000 ``test`` problems, so held-out
evaluation never sees a training problem.

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


def generate_addition(size: int, split: str, wrong_fraction: float, seed: int) -> dict[str, list[Any]]:
    """``size`` addition examples; a ``wrong_fraction`` share get a wrong completion (another number in 0..198).

    The ``answer`` column always holds the correct sum (for exact-match rewards); ``correct`` says whether the
    completion is right.
    """
    rng = np.random.default_rng(seed)
    pairs = addition_problems(split)[rng.integers(0, 1000 if split == "test" else 9000, size)]
    wrong = rng.random(size) < wrong_fraction
    prompts, completions, answers = [], [], []
    for (a, b), bad in zip(pairs, wrong):
        total = int(a + b)
        shown = total
        if bad:
            shown = int(rng.integers(0, 198))
            shown += shown >= total  # any number in 0..198 except the sum
        prompts.append(f"{a}+{b}=")
        completions.append(str(shown))
        answers.append(str(total))
    return {"prompt": prompts, "completion": completions, "answer": answers, "correct": [not w for w in wrong]}


def load_examples(cfg: LLMDataConfig, seed: int = 0, *, need_completion: bool = True, what: str = "data") -> Any:
    """Load ``cfg`` as a ``datasets.Dataset`` with ``prompt`` (and ``completion``) columns; errors name the file."""
    ds = _load_raw(cfg, seed, what)
    if cfg.source in GENERATED_TASKS:
        return ds
    return rename_columns(ds, cfg, cfg.source, need_completion=need_completion, what=what)


def _load_raw(cfg: LLMDataConfig, seed: int, what: str) -> Any:
    import datasets

    if cfg.source in GENERATED_TASKS:
        return datasets.Dataset.from_dict(generate_addition(cfg.size, cfg.split, cfg.wrong_fraction, cfg.seed + seed))
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
