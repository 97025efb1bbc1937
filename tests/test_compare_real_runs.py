"""``rlft compare`` across the three families, on real tiny runs made here: a tic-tac-toe game agent
(record -> imitate -> finetune -> eval), an LLM (sft -> llm_eval on the tiny model) and a digits classifier.

Each run's row names its kind ('game agent', 'llm', 'classifier'), its headline metric and a number equal to the
headline in the run's own ``results.json``; the game run's headline is the eval stage's score, (W + D/2) / games
averaged over the opponents, recomputed here from the eval table. ``compare.png`` is a readable PNG.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llm_helpers import HELD_OUT, tiny_llm  # noqa: F401  (tiny_llm: session fixture)

from rlft.cli.main import main
from rlft.pipeline.compare import COLUMNS, read_results
from rlft.pipeline.config import pipeline_from_dict
from rlft.pipeline.runner import run_pipeline

GAME: dict[str, Any] = {
    "seed": 0, "num_threads": 1, "device": "cpu", "env": {"id": "tictactoe"},
    "stages": ["record", "imitate", "finetune", "eval"],
    "record": {"agent": "perfect:0.2", "episodes": 30},
    "imitate": {"policy": {"net_arch": [32]}, "epochs": 2, "critic_warmup_epochs": 1, "batch_size": 64},
    "finetune": {"start_from": "imitate", "total_timesteps": 256, "n_envs": 2, "n_steps": 64, "batch_size": 64,
                 "n_epochs": 1, "eval_every": 0, "eval_episodes": 2, "checkpoint_every": 256,
                 "self_play": {"opponents": ["random"], "eval_opponents": ["random"], "elo_games": 0}},
    "eval": {"episodes": 6, "opponents": ["random", "alphabeta:1"]},
}
CLASSIFIER: dict[str, Any] = {
    "seed": 0, "num_threads": 1, "stages": ["classify"],
    "classify": {"backbone": "mlp", "data": {"source": "digits", "max_train": 200, "max_eval": 100},
                 "encoder": {"hidden": [32], "features_dim": 32}, "epochs": 2, "batch_size": 32, "lr": 3e-3},
}


def _llm(model: Path) -> dict[str, Any]:
    return {"device": "cpu", "stages": ["sft", "llm_eval"], "model": {"name": str(model), "num_threads": 1},
            "sft": {"data": {"source": "addition", "size": 64}, "max_steps": 2, "batch_size": 8,
                    "logging_steps": 1, "eval": {"enabled": False}},
            "llm_eval": HELD_OUT}


def _rows(markdown: str) -> dict[str, dict[str, str]]:
    """The Markdown table's rows by run name, as ``{column: cell}``."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert tuple(header) == COLUMNS
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[1:]]
    return {row["run"]: row for row in rows}


def _game_score(table: dict[str, Any], agent: str) -> float:
    """(W + D/2) / games of ``agent`` against each opponent, averaged over the opponents."""
    per_opponent = table[agent]["per_opponent"]
    return float(np.mean([(r["wins"] + r["draws"] / 2) / r["games"] for r in per_opponent.values()]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_llm: Path) -> dict[str, Path]:  # noqa: F811
    root = tmp_path_factory.mktemp("compare")
    folders = {"game": root / "ttt", "llm": root / "adder", "classifier": root / "digits"}
    for kind, data in (("game", GAME), ("llm", _llm(tiny_llm)), ("classifier", CLASSIFIER)):
        run_pipeline(pipeline_from_dict(data), folders[kind])
    return folders


def test_compare_shows_each_runs_own_headline(runs: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["compare", str(runs["game"]), str(runs["llm"]), str(runs["classifier"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = _rows((out / "compare.md").read_text())
    assert list(rows) == [p.name for p in runs.values()]

    expected = {"game": ("game agent", "eval", "score"), "llm": ("llm", "llm_eval", "greedy_em"),
                "classifier": ("classifier", "classify", "accuracy")}
    for kind, (label, stage, metric) in expected.items():
        row = rows[runs[kind].name]
        headline = read_results(runs[kind])[stage].headline
        assert headline is not None and headline.name == metric
        assert row["kind"] == label and row["metric"] == f"{stage} {metric}"
        assert row["value"] != "-" and float(row["value"]) == pytest.approx(headline.value, abs=5e-5)
        assert runs[kind].name in printed and label in printed
        # Every kind of run reports its cost: the process's peak memory (at least the 50 MiB torch alone takes).
        assert row["peak MiB"] != "-" and float(row["peak MiB"].replace(",", "")) > 50

    game = read_results(runs["game"])
    table = game["eval"].details["table"]
    assert set(table) == {"imitate", "finetune"} and set(table["finetune"]["per_opponent"]) == {"random",
                                                                                                "alphabeta:1"}
    assert game["eval"].headline.value == pytest.approx(_game_score(table, "finetune"))  # type: ignore[union-attr]
    assert float(rows[runs["game"].name]["value"]) == pytest.approx(_game_score(table, "finetune"), abs=5e-5)

    png = out / "compare.png"
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    import matplotlib.image

    assert matplotlib.image.imread(str(png)).shape[2] in (3, 4)
