"""Preference data: TRL's ``prompt`` / ``chosen`` / ``rejected`` pairs, loaded, checked, scored and labelled.

* :func:`load_preferences` -- a JSONL / CSV / Parquet file or ``save_to_disk`` folder (or the pairs a ``label`` stage
  wrote) as a :class:`datasets.Dataset` with ``prompt``, ``chosen`` and ``rejected`` columns. Plain text and
  conversational (``[{"role": ..., "content": ...}]``) pairs both load. A missing column, a missing value or an
  empty text (no prompt and no completion) is a :class:`~rlft.core.errors.DatasetError` naming the row; pairs whose
  two sides are equal teach nothing: they are dropped and counted (``dataset.info.description`` says how many),
  and a file of nothing else is an error.
* :func:`score_texts` / :func:`pairwise_accuracy` -- a sequence-classification reward model's score of
  ``prompt + completion`` (no EOS appended: the text exactly as the ``rl`` stage scores a sampled completion), and the
  share of pairs it orders right.
* :class:`Judge` and :func:`order_pair` -- AI feedback: a reward function or reward model folder scores two
  completions; the pair is ordered by score, ties dropped, and a ``flip`` share reversed (label noise).
* :func:`append_jsonl` / :func:`answered` -- the label file written one line at a time (nothing lost on a kill) and
  the prompts already answered (so a second run asks only the rest).

Example::

    pairs = load_preferences(PreferenceDataConfig(source="prefs.jsonl"))
    pairwise_accuracy(reward_model, tokenizer, pairs)   # 0.9
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlft.core.errors import DatasetError
from rlft.core.metrics import log
from rlft.llm.config import LLMDataConfig, PreferenceDataConfig, RewardSpec
from rlft.llm.data import _load_raw
from rlft.llm.generation import generate
from rlft.llm.rewards import completion_text, load_reward_model, resolve_reward

ROLES = ("prompt", "chosen", "rejected")


def load_preferences(cfg: PreferenceDataConfig, what: str = "data") -> Any:
    """``cfg`` as a Dataset with ``prompt`` / ``chosen`` / ``rejected`` columns; bad rows are errors naming them."""
    raw = _load_raw(LLMDataConfig(source=cfg.source, split=cfg.split, limit=cfg.limit), 0, what)
    columns = {"prompt": cfg.prompt_column, "chosen": cfg.chosen_column, "rejected": cfg.rejected_column}
    if not cfg.prompt_column:
        del columns["prompt"]
    for role, column in columns.items():
        if column not in raw.column_names:
            raise DatasetError(
                f"The {what} '{cfg.source}' has no {role} column '{column}' (its columns: {raw.column_names}). "
                f"Preference pairs need prompt, chosen and rejected columns (TRL's preference format); set "
                f"{what}.{role}_column to the column that holds the {role} text.")
    table = {role: list(raw[column]) for role, column in columns.items()}
    if "prompt" not in table:
        table["prompt"] = [""] * len(raw)
    keep = []
    for i, (prompt, chosen, rejected) in enumerate(zip(table["prompt"], table["chosen"], table["rejected"])):
        for role, value in (("chosen", chosen), ("rejected", rejected)):
            # An empty completion after a prompt is a real answer (the model said nothing); a missing one, or an
            # empty text with no prompt, is not.
            if value is None or prompt is None or not pair_texts(prompt, value).strip():
                raise DatasetError(f"The {what} '{cfg.source}' has an empty {role} text in row {i} (prompt "
                                   f"{completion_text(prompt or '')[:60]!r}). Remove the row or fill it in.")
        if completion_text(chosen).strip() != completion_text(rejected).strip():
            keep.append(i)
    same = len(raw) - len(keep)
    if not keep:
        raise DatasetError(f"The {what} '{cfg.source}' holds no usable pair: all {len(raw)} have chosen == rejected "
                           "(or it is empty). A preference pair needs two different completions.")
    if same:
        log.warning("%s '%s': %d of %d pairs have chosen == rejected and are dropped (they teach nothing)",
                    what, cfg.source, same, len(raw))
    import datasets

    ds = datasets.Dataset.from_dict({r: [table[r][i] for i in keep] for r in ROLES})
    ds.info.description = json.dumps({"pairs": len(keep), "dropped_identical": same})
    return ds


def pair_texts(prompt: Any, completion: Any) -> str:
    """The text a reward model scores for one completion: prompt + completion, as the ``rl`` stage scores it."""
    return completion_text(prompt) + completion_text(completion)


@torch.no_grad()
def score_texts(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 128) -> list[float]:
    """The reward model's score (its one logit) of each text (right padding, no special tokens added)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start:start + batch_size]), return_tensors="pt", padding=True,
                          padding_side="right", add_special_tokens=False).to(device)
        scores += model(**batch).logits[:, 0].float().tolist()
    model.train(was_training)
    return scores


def pairwise_accuracy(model: Any, tokenizer: Any, pairs: Any, batch_size: int = 128) -> dict[str, float]:
    """``accuracy`` (share of pairs with chosen scored above rejected; a tie counts half) and ``margin``."""
    chosen = score_texts(model, tokenizer, [pair_texts(p, c) for p, c in zip(pairs["prompt"], pairs["chosen"])],
                         batch_size)
    rejected = score_texts(model, tokenizer, [pair_texts(p, r) for p, r in zip(pairs["prompt"], pairs["rejected"])],
                           batch_size)
    diff = np.asarray(chosen) - np.asarray(rejected)
    return {"accuracy": float(np.mean((diff > 0) + 0.5 * (diff == 0))), "margin": float(diff.mean()),
            "pairs": len(diff)}


class Judge:
    """Scores completions for AI feedback: a reward function (``fn``) or a reward model folder (``model``)."""

    def __init__(self, spec: RewardSpec, device: str = "cpu") -> None:
        self.spec = spec
        self.name = spec.fn or spec.model
        if spec.model:
            self.model, self.tokenizer = load_reward_model(spec.model)
            self.model.to(device)
        else:
            self.fn = resolve_reward(spec)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float | None]:
        if self.spec.model:
            return list(score_texts(self.model, self.tokenizer, [p + c for p, c in zip(prompts, completions)]))
        return self.fn(prompts, completions, **columns)


@dataclass
class Pair:
    """One labelled comparison: which completion won (or why there is none)."""

    prompt: str
    first: str
    second: str
    answer: str
    """`1`, `2` (that one is preferred), `tie`, `skip` (no preference), or `same` (two equal completions)."""
    flipped: bool = False

    def row(self, extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The preference row (``prompt``, ``chosen``, ``rejected``, ...); None when there is no preference."""
        if self.answer not in ("1", "2"):
            return None
        chosen, rejected = (self.first, self.second) if self.answer == "1" else (self.second, self.first)
        return {"prompt": self.prompt, "chosen": chosen, "rejected": rejected, **(extra or {})}


def order_pair(prompt: str, first: str, second: str, scores: Sequence[float | None], flip: bool = False) -> Pair:
    """The pair ordered by the judge's two scores: the higher wins; equal (or unscored) is a tie; ``flip`` reverses."""
    a, b = scores
    if first.strip() == second.strip():
        return Pair(prompt, first, second, "same")
    if a is None or b is None or a == b:
        return Pair(prompt, first, second, "tie")
    winner = "1" if a > b else "2"
    if flip:
        winner = "2" if winner == "1" else "1"
    return Pair(prompt, first, second, winner, flipped=flip)


def append_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append JSON lines and make them durable (a kill right after loses nothing written; a line torn by an earlier
    kill is ended first, so it stays one bad line)."""
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        torn = f.tell() > 0 and _last_byte(path) != b"\n"
        f.write((("\n" if torn else "") + "".join(json.dumps(r) + "\n" for r in rows)).encode())
        f.flush()
        os.fsync(f.fileno())


def _last_byte(path: Path) -> bytes:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def seen_path(out: Path) -> Path:
    """The log of every prompt answered (ties and skips too) beside the preference file: ``OUT.seen.jsonl``."""
    return out.with_name(out.name + ".seen.jsonl")


def answered(out: Path) -> set[str]:
    """The prompts answered in earlier runs (from the preference file and its ``.seen.jsonl`` log)."""
    done: set[str] = set()
    for path in (out, seen_path(out)):
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                done.add(str(json.loads(line)["prompt"]))
            except (ValueError, KeyError, TypeError):
                if n < len(path.read_text().splitlines()):  # a torn last line from a kill is fine; others are not
                    raise DatasetError(f"Line {n} of '{path}' is not a JSON object with a prompt; fix or remove it "
                                       "to resume labelling.") from None
    return done


def record(out: Path, pairs: list[Pair], extra: list[dict[str, Any]] | None = None) -> None:
    """Write answers: their preference rows first (where there is a preference), then the seen log."""
    rows = [p.row(x) for p, x in zip(pairs, extra or [{} for _ in pairs])]
    append_jsonl(out, [r for r in rows if r is not None])
    append_jsonl(seen_path(out), [{"prompt": p.prompt, "answer": p.answer, "flipped": p.flipped} for p in pairs])


def sample_completions(model: Any, tokenizer: Any, prompts: list[str], *, seed: int, samples: int = 2,
                       max_new_tokens: int = 16, temperature: float = 1.0, batch_size: int = 256) -> list[list[str]]:
    """``samples`` sampled completions per prompt (seeds ``seed`` to ``seed + samples - 1``: reproducible)."""
    kw = {"max_new_tokens": max_new_tokens, "sample": True, "temperature": temperature, "batch_size": batch_size}
    runs = [generate(model, tokenizer, prompts, seed=seed + k, **kw) for k in range(samples)]  # type: ignore[arg-type]
    return [list(outs) for outs in zip(*runs)]


def sample_pairs(model: Any, tokenizer: Any, prompts: list[str], *, seed: int, max_new_tokens: int = 16,
                 temperature: float = 1.0, batch_size: int = 256) -> list[tuple[str, str]]:
    """Two sampled completions per prompt (seeds ``seed`` and ``seed + 1``: reproducible)."""
    both = sample_completions(model, tokenizer, prompts, seed=seed, max_new_tokens=max_new_tokens,
                              temperature=temperature, batch_size=batch_size)
    return [(a, b) for a, b in both]


def judged_pairs(prompt: str, completions: Sequence[str], scores: Sequence[float | None], draws: Any,
                 flip: float) -> list[Pair]:
    """Every two of one prompt's sampled completions, ordered by the judge (one flip draw per comparison).

    Two equal completions, or two that repeat a comparison already made, are ``same``; with two samples this is
    exactly one comparison per prompt.
    """
    pairs: list[Pair] = []
    compared: set[frozenset[str]] = set()
    for i in range(len(completions)):
        for j in range(i + 1, len(completions)):
            first, second = completions[i], completions[j]
            flipped = bool(draws.random() < flip)
            key = frozenset((first.strip(), second.strip()))
            if key in compared:
                pairs.append(Pair(prompt, first, second, "same"))
                continue
            compared.add(key)
            pairs.append(order_pair(prompt, first, second, (scores[i], scores[j]), flip=flipped))
    return pairs


def label_with_judge(model: Any, tokenizer: Any, prompts: Any, judge: Judge, out: Path, *, flip: float = 0.0,
                     seed: int = 0, samples: int = 2, max_new_tokens: int = 16, temperature: float = 1.0,
                     batch_size: int = 256) -> dict[str, int]:
    """AI feedback: label every prompt of ``prompts`` (a Dataset) not yet answered in ``out``; returns counts.

    Each prompt gets ``samples`` completions and the judge compares every two different ones (with two samples: one
    comparison). Each batch is sampled, scored and written before the next, so a kill loses at most one batch.
    """
    done = answered(out)
    todo = [i for i, p in enumerate(prompts["prompt"]) if str(p) not in done]
    rng = np.random.default_rng(seed)
    counts = {"pairs": 0, "ties": 0, "same": 0, "flipped": 0, "skipped_answered": len(prompts) - len(todo)}
    seen: set[str] = set()
    for start in range(0, len(todo), batch_size):
        rows = prompts.select(todo[start:start + batch_size])
        batch = [str(p) for p in rows["prompt"]]
        sampled = sample_completions(model, tokenizer, batch, seed=seed + start * samples // 2, samples=samples,
                                     max_new_tokens=max_new_tokens, temperature=temperature, batch_size=batch_size)
        columns = {c: list(rows[c]) for c in rows.column_names if c != "prompt"}
        scores = [judge(batch, [s[k] for s in sampled], **columns) for k in range(samples)]
        labelled = []
        for n, (prompt, completions) in enumerate(zip(batch, sampled)):
            if prompt in seen:  # a prompt that appears twice is asked once
                continue
            seen.add(prompt)
            labelled += judged_pairs(prompt, completions, [s[n] for s in scores], rng, flip)
        for pair in labelled:
            counts[{"1": "pairs", "2": "pairs", "tie": "ties", "same": "same"}[pair.answer]] += 1
            counts["flipped"] += pair.flipped
        record(out, labelled, [{"flipped": p.flipped} for p in labelled])  # one durable write per batch
    return counts
