"""LLM datasets: the generated addition task, local files in every format, column mapping, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest

from rlft.core.errors import DatasetError
from rlft.llm.config import LLMDataConfig
from rlft.llm.data import addition_problems, corpus_texts, generate_addition, load_examples


def test_addition_splits_are_disjoint_and_cover_every_problem() -> None:
    train, test = addition_problems("train"), addition_problems("test")
    ids = lambda pairs: {int(a) * 100 + int(b) for a, b in pairs}  # noqa: E731
    assert len(ids(train)) == 9000 and len(ids(test)) == 1000
    assert not ids(train) & ids(test)
    assert ids(train) | ids(test) == set(range(10_000))


def test_addition_examples_and_wrong_fraction() -> None:
    ex = generate_addition(4000, "train", 0.3, seed=5)
    for p, a in zip(ex["prompt"][:50], ex["answer"][:50]):
        x, y = p.rstrip("=").split("+")
        assert int(x) + int(y) == int(a) and 0 <= int(x) <= 99 and 0 <= int(y) <= 99
    wrong = np.array([c != a for c, a in zip(ex["completion"], ex["answer"])])
    assert wrong.tolist() == [not c for c in ex["correct"]]
    assert abs(wrong.mean() - 0.3) < 0.03
    assert generate_addition(10, "test", 0.0, seed=1) == generate_addition(10, "test", 0.0, seed=1)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "disk"])
def test_local_formats_with_column_mapping(fmt: str, tmp_path: Path) -> None:
    rows = {"question": ["1+1=", "2+2="], "answer": ["2", "4"], "id": [1, 2]}
    ds = datasets.Dataset.from_dict(rows)
    path = tmp_path / f"data.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(dict(zip(rows, vals))) for vals in zip(*rows.values())))
    elif fmt == "csv":
        ds.to_csv(str(path), index=False)
    elif fmt == "parquet":
        ds.to_parquet(str(path))
    else:
        datasets.DatasetDict({"train": ds}).save_to_disk(str(path))
    out = load_examples(LLMDataConfig(source=str(path), prompt_column="question", completion_column="answer"))
    assert out["prompt"] == ["1+1=", "2+2="] and [str(c) for c in out["completion"]] == ["2", "4"]
    assert "id" in out.column_names  # other columns reach reward functions


def test_corpus_texts_from_txt_and_prompt_completion(tmp_path: Path) -> None:
    txt = tmp_path / "corpus.txt"
    txt.write_text("hello world\n\nsecond line\n")
    assert corpus_texts(LLMDataConfig(source=str(txt))) == ["hello world", "second line"]
    assert corpus_texts(LLMDataConfig(size=3, seed=1))[0] == "".join(
        (lambda e: (e["prompt"][0], e["completion"][0]))(generate_addition(3, "train", 0.0, 1)))


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="neither a generated task"):
        load_examples(LLMDataConfig(source="nope.jsonl"), what="sft.data")
    bad = tmp_path / "data.xlsx"
    bad.write_text("x")
    with pytest.raises(DatasetError, match="unknown format"):
        load_examples(LLMDataConfig(source=str(bad)))
    corrupt = tmp_path / "data.parquet"
    corrupt.write_text("not parquet")
    with pytest.raises(DatasetError, match="Cannot read"):
        load_examples(LLMDataConfig(source=str(corrupt)))
    with pytest.raises(DatasetError, match="splits 'train' and 'test'"):
        load_examples(LLMDataConfig(split="validation"))
