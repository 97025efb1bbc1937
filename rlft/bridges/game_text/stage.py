"""The ``game_text`` stage: the ``record`` stage's games -> text datasets that later LLM stages read by name.

It writes ``DIR/data/<stage>/train.jsonl`` (and ``test.jsonl``, ``train.positions.jsonl``, ``transcripts.jsonl``) and
offers them as the text artifact's data sources ``game_text``, ``game_text:test``, ``game_text:positions`` (each
training position once, no completion: prompts for ``rl``) and ``game_text:transcripts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlft.bridges.game_text.convert import games_to_text
from rlft.core.config import param
from rlft.core.envs import resolve_env
from rlft.core.errors import DatasetError
from rlft.core.metrics import log
from rlft.pipeline.artifacts import Outputs, TextData
from rlft.pipeline.context import StageContext
from rlft.pipeline.results import StageResult


@dataclass
class GameTextConfig:
    """Settings of the ``game_text`` stage: recorded games (the ``record`` stage's dataset) -> text datasets."""

    dataset: str = ""
    """A recorded game dataset (path or Minari id). Empty: the dataset of the `record` stage."""
    label_agent: str = ""
    """Relabel every recorded position with this agent's move (e.g. `perfect`). Empty: the recorded move."""
    results: list[str] = field(default_factory=lambda: ["win", "draw", "loss"])
    """Keep the moves of seats whose game ended so (`win`, `draw`, `loss`)."""
    dedupe: bool = False
    """Keep one row per distinct (prompt, completion)."""
    test_fraction: float = param(0.1, ge=0, lt=1)
    """Share of recorded episodes held out in `test.jsonl` (data source `game_text:test`)."""

    def validate(self) -> None:
        bad = [r for r in self.results if r not in ("win", "draw", "loss")]
        if bad:
            raise ValueError(f"game_text.results: unknown result(s) {bad}; use win, draw, loss.")


def run(ctx: StageContext[GameTextConfig]) -> StageResult:
    """Write ``DIR/data/<stage>/{train,test,transcripts}.jsonl`` and offer them as text data sources."""
    cfg = ctx.config
    dataset = cfg.dataset or ctx.artifacts.dataset
    if not dataset:
        raise DatasetError(f"The {ctx.name} stage found no recorded games: run `record` before it or set "
                           f"{ctx.name}.dataset.")
    folder = ctx.data_dir()
    counts = games_to_text(dataset, resolve_env(ctx.env.id), folder / "train.jsonl",
                           label_agent=cfg.label_agent, results=tuple(cfg.results), dedupe=cfg.dedupe,
                           test_fraction=cfg.test_fraction, transcripts=folder / "transcripts.jsonl", seed=ctx.seed)
    log.info("%s: %d training rows (%d distinct positions), %d held-out rows -> %s", ctx.name, counts["rows"],
             counts["distinct_prompts"], counts.get("test_rows", 0), folder)
    sources = {"game_text": counts["out"], "game_text:transcripts": counts["transcripts"],
               "game_text:positions": counts["positions_out"]}
    if "test_out" in counts:
        sources["game_text:test"] = counts["test_out"]
    return StageResult(outputs=Outputs(text=TextData(env=ctx.env.id, sources=sources)),
                       metrics={k: v for k, v in counts.items() if isinstance(v, int)})
