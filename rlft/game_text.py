"""Games as text: an env plugin's text view, and recorded games -> prompt/completion datasets for LLM stages.

A **text view** says how an observation is written as a prompt and how a move is read back from a completion. An env
plugin declares one in ``EnvPlugin.extras["text_view"]`` (``"module:Class"``, ``"file.py:Class"``, a class or an
instance); tic-tac-toe and Connect Four have built-in views (:mod:`rlft.envs.text_views`).

Recorded games (the Minari datasets ``rlft record`` writes, one episode per seat) become one JSONL row per move:
``{"prompt": view.prompt(obs), "completion": view.move_text(action), "legal": [...], "result": "win"|...}``. With
``label_agent`` every position is relabelled by that agent (e.g. ``perfect``), the text analogue of DAgger-style
expert labels: the positions come from varied play, the moves from the expert. ``transcripts`` writes each seat's game
as one document (its positions and moves, one per line) for the ``pretrain`` stage.

The ``game_text`` stage converts ``ctx.outputs["dataset"]`` (from ``record``) into ``DIR/data/game_text/train.jsonl``
(and ``test.jsonl``), and offers them to later stages as the data sources ``game_text``, ``game_text:test``,
``game_text:positions`` (each training position once, no completion: prompts for ``rl``) and
``game_text:transcripts``.

Example::

    rlft record --env tictactoe --agent perfect:0.2 --episodes 2000 --out data/ttt
    rlft games-to-text data/ttt --env tictactoe --label-agent perfect --out data/ttt.jsonl
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from rlft import plugins
from rlft.config import param
from rlft.environment import EnvPlugin
from rlft.errors import DatasetError, PluginError
from rlft.metrics import log

if TYPE_CHECKING:
    from rlft.pipeline import StageContext


@runtime_checkable
class TextView(Protocol):
    """How an env's observations and moves are written as text (see :mod:`rlft.envs.text_views`)."""

    def prompt(self, observation: Any, action_mask: Any = None) -> str:
        """The position for the seat to move, as the prompt a language model completes."""
        ...

    def move_text(self, action: int) -> str:
        """The completion that plays ``action``."""
        ...

    def parse_move(self, text: str) -> int | None:
        """The action a completion names, or None when it names none (unparsable)."""
        ...

    def observation(self, prompt: str) -> Any:
        """The observation back from a prompt written by :meth:`prompt` (ValueError for other text)."""
        ...

    def replay(self, observation: Any) -> list[int]:
        """Legal actions from the initial position that reach ``observation`` (to rebuild it in the real env)."""
        ...


def text_view(plugin: EnvPlugin) -> TextView:
    """The text view an env plugin declares in ``extras["text_view"]``; a PluginError says how to add one."""
    spec = plugin.extras.get("text_view")
    if spec is None:
        raise PluginError(
            f"The env '{plugin.name}' has no text view, so a language model cannot play it. Declare one in the "
            "plugin: EnvPlugin(..., extras={'text_view': 'my_pkg.views:MyView'}), a class with prompt(observation), "
            "move_text(action), parse_move(text), observation(prompt) and replay(observation) "
            "(see rlft/envs/text_views.py).")
    obj = plugins.import_object(spec, "text view") if isinstance(spec, str) else spec
    view = obj() if isinstance(obj, type) else obj
    missing = [m for m in ("prompt", "move_text", "parse_move") if not callable(getattr(view, m, None))]
    if missing:
        raise PluginError(f"The text view '{spec}' of env '{plugin.name}' lacks {missing}.")
    return view  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------------------------
# Recorded games -> text
# --------------------------------------------------------------------------------------------------------------


def games_to_text(dataset: str | Path, plugin: EnvPlugin, out: str | Path, *, label_agent: str = "",
                  results: tuple[str, ...] = ("win", "draw", "loss"), dedupe: bool = False, test_fraction: float = 0.0,
                  transcripts: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Convert a recorded game dataset (both seats) into prompt/completion JSONL; returns counts.

    ``results`` keeps only the moves of seats whose game ended so (e.g. ``("win", "draw")``). ``dedupe`` keeps one
    row per distinct (prompt, completion). ``test_fraction`` of the *episodes* go to ``<out stem>.test.jsonl``
    (disjoint games, for held-out evaluation).
    """
    from rlft.agents import resolve_agent
    from rlft.datasets import load_transitions

    view = text_view(plugin)
    data = load_transitions(dataset)
    labeller = resolve_agent(label_agent, plugin, seed=seed) if label_agent else None
    episodes = int(data.episode.max()) + 1
    returns = np.zeros(episodes)
    np.add.at(returns, data.episode, data.rewards)
    outcome = np.where(returns > 0, "win", np.where(returns < 0, "loss", "draw"))
    rng = np.random.default_rng(seed)
    is_test = rng.random(episodes) < test_fraction
    rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    seen: set[tuple[str, str]] = set()
    docs: list[list[str]] = [[] for _ in range(episodes)]
    for i in range(len(data)):
        ep = int(data.episode[i])
        obs = data.observations[i]
        mask = data.action_masks[i] if data.action_masks is not None else None
        prompt = view.prompt(obs, mask)
        action = int(data.actions[i])
        docs[ep].append(prompt + view.move_text(action))
        if str(outcome[ep]) not in results:
            continue
        if labeller is not None:
            action = int(labeller.act(obs, action_mask=mask, deterministic=True))
        completion = view.move_text(action)
        if dedupe:
            if (prompt, completion) in seen:
                continue
            seen.add((prompt, completion))
        legal = np.flatnonzero(mask).tolist() if mask is not None else []
        rows[bool(is_test[ep])].append({"prompt": prompt, "completion": completion, "legal": legal,
                                        "result": str(outcome[ep])})
    if not rows[False]:
        raise DatasetError(f"No move of '{dataset}' passed the filter results={list(results)}.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out, rows[False])
    positions = list({r["prompt"]: {"prompt": r["prompt"], "legal": r["legal"]} for r in rows[False]}.values())
    _write_jsonl(out.with_suffix(".positions.jsonl"), positions)  # each training position once: RL prompts
    counts: dict[str, Any] = {"rows": len(rows[False]), "episodes": episodes, "out": str(out),
                              "distinct_prompts": len(positions),
                              "positions_out": str(out.with_suffix(".positions.jsonl"))}
    if test_fraction > 0:
        test = out.with_suffix(".test.jsonl")
        _write_jsonl(test, rows[True])
        counts.update(test_rows=len(rows[True]), test_out=str(test))
    if transcripts:
        Path(transcripts).parent.mkdir(parents=True, exist_ok=True)
        _write_jsonl(Path(transcripts), [{"text": "\n".join(d)} for d in docs if d])
        counts["transcripts"] = str(transcripts)
    return counts


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


# --------------------------------------------------------------------------------------------------------------
# The `game_text` stage
# --------------------------------------------------------------------------------------------------------------


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


def run(ctx: StageContext) -> dict[str, Any]:
    """Write ``DIR/data/game_text/{train,test,transcripts}.jsonl`` and offer them as data sources."""
    from rlft.environment import resolve_env

    cfg = ctx.cfg.game_text
    dataset = cfg.dataset or ctx.outputs.get("dataset")
    if not dataset:
        raise DatasetError("The game_text stage found no recorded games: run `record` before it or set "
                           "game_text.dataset.")
    folder = ctx.run.data_dir("game_text")
    counts = games_to_text(dataset, resolve_env(ctx.cfg.env.id), folder / "train.jsonl",
                           label_agent=cfg.label_agent, results=tuple(cfg.results), dedupe=cfg.dedupe,
                           test_fraction=cfg.test_fraction, transcripts=folder / "transcripts.jsonl", seed=ctx.seed)
    log.info("game_text: %d training rows (%d distinct positions), %d held-out rows -> %s", counts["rows"],
             counts["distinct_prompts"], counts.get("test_rows", 0), folder)
    sources = {"game_text": counts["out"], "game_text:transcripts": counts["transcripts"],
               "game_text:positions": counts["positions_out"]}
    if "test_out" in counts:
        sources["game_text:test"] = counts["test_out"]
    return {"outputs": {"data_sources": sources, "text_env": ctx.cfg.env.id},
            "metrics": {k: v for k, v in counts.items() if isinstance(v, int)}}
