"""An example rlft stage shipped by a user package: ``count_words`` counts the words of a text.

A package adds a stage with an entry point in the group ``rlft.stages`` (here in ``*.dist-info/entry_points.txt``;
in a real package, ``[project.entry-points."rlft.stages"] count_words = "rlft_test_stage_pkg:STAGE"`` in its
``pyproject.toml``). A pipeline then lists it like a built-in: ``stages: [count_words]`` plus a ``count_words:``
section, whose keys are the fields of the config dataclass (validated like every other section).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import rlft


@dataclass
class CountWordsConfig:
    """Settings of the ``count_words`` stage."""

    text: str = "the quick brown fox"
    """The text whose words are counted."""
    min_length: int = 1
    """Only words with at least this many characters count."""


def run(ctx: rlft.StageContext[CountWordsConfig]) -> rlft.StageResult:
    """Count the words of ``ctx.config.text``; write ``DIR/stages/<name>/counts.json``; headline: the word count."""
    words = [w for w in ctx.config.text.split() if len(w) >= ctx.config.min_length]
    folder = ctx.output_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "counts.json").write_text(json.dumps({"words": len(words), "distinct": len(set(words))}))
    with ctx.metrics() as m:  # TensorBoard: DIR/tb/<name>/
        m.log({"count/words": len(words)}, step=0)
    return rlft.StageResult(outputs=rlft.Outputs(),  # no model: a training stage declares e.g. Outputs(model=...)
                            metrics={"words": len(words), "distinct": len(set(words))},
                            headline=rlft.Headline("words", float(len(words))))


STAGE = rlft.Stage(config=CountWordsConfig, run=run, summary="count the words of a text (an example plugin stage)")


def shouting(prompts: list[str], completions: list[str], **_: object) -> list[float | None]:
    """A reward plugin from the same package (entry point group ``rlft.rewards``): 1 for an all-caps completion."""
    return [1.0 if c.isupper() else 0.0 for c in completions]
