"""Recorded games -> prompt/completion datasets for the LLM stages.

Recorded games (the Minari datasets ``rlft record`` writes, one episode per seat) become one JSONL row per move:
``{"prompt": view.prompt(obs), "completion": view.move_text(action), "legal": [...], "result": "win"|...}``. With
``label_agent`` every position is relabelled by that agent (e.g. ``perfect``), the text analogue of DAgger-style
expert labels: the positions come from varied play, the moves from the expert. ``transcripts`` writes each seat's game
as one document (its positions and moves, one per line) for the ``pretrain`` stage.

Example::

    rlft record --env tictactoe --agent perfect:0.2 --episodes 2000 --out data/ttt
    rlft games-to-text data/ttt --env tictactoe --label-agent perfect --out data/ttt.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlft.bridges.game_text.view import text_view
from rlft.core.envs import EnvPlugin
from rlft.core.errors import DatasetError
from rlft.policy.agents import resolve_agent
from rlft.policy.datasets import load_transitions
from rlft.policy.report import result_of

if TYPE_CHECKING:
    pass


def games_to_text(dataset: str | Path, plugin: EnvPlugin, out: str | Path, *, label_agent: str = "",
                  results: tuple[str, ...] = ("win", "draw", "loss"), dedupe: bool = False, test_fraction: float = 0.0,
                  transcripts: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Convert a recorded game dataset (both seats) into prompt/completion JSONL; returns counts.

    ``results`` keeps only the moves of seats whose game ended so (e.g. ``("win", "draw")``). ``dedupe`` keeps one
    row per distinct (prompt, completion). ``test_fraction`` of the *episodes* go to ``<out stem>.test.jsonl``
    (disjoint games, for held-out evaluation).
    """

    view = text_view(plugin)
    data = load_transitions(dataset)
    labeller = resolve_agent(label_agent, plugin, seed=seed) if label_agent else None
    episodes = int(data.episode.max()) + 1
    returns = np.zeros(episodes)
    np.add.at(returns, data.episode, data.rewards)
    outcome = [result_of(float(r)) for r in returns]
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
