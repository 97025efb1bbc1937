"""An LLM that plays a game: renders the observation with the env's text view, generates, parses the move back.

``rlft.load_agent(DIR)`` returns a :class:`GameLLMAgent` for an LLM run trained on a game (its ``agent.json`` names
the ``env``), so ``rlft eval``, ``rlft arena`` and ``rlft play`` treat it like any other agent. It never returns an
illegal move. Two move policies (``agent.json`` ``move_policy``, or the ``policy`` attribute):

* ``constrained`` (default): constrained decoding over the legal moves. Every legal move's text is scored by the
  model's log-probability after the prompt (one batched forward pass); greedy play takes the most likely legal move,
  sampling draws from the model's distribution renormalised over the legal moves (at ``temperature``).
* ``generate``: free generation (greedy, or sampled when not deterministic); when the completion does not parse or
  names an illegal move, the agent re-asks up to ``retries`` times by sampling, then falls back to the constrained
  choice.

Both count what the free model would have done in :attr:`GameLLMAgent.stats` (``moves``, ``free_legal``,
``unparsable``, ``illegal``, ``reasked``, ``fallbacks``; with ``audit``, on by default for loaded agents, the
constrained policy also generates greedily, only to count). ``rlft eval`` and the ``eval`` stage add these counts to
their results as ``moves/*`` (``moves/illegal_rate``: the share of moves the free model got wrong).

Example::

    agent = rlft.load_agent("runs/ttt-llm")
    agent.act(obs["observation"], action_mask=obs["action_mask"])  # a legal square
    agent.stats                                                    # {'moves': 1, 'unparsable': 0, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from rlft.bridges.game_text.view import text_view
from rlft.core.agent import check_mask
from rlft.core.envs import resolve_env
from rlft.core.errors import PluginError
from rlft.llm.agent import LLMAgent
from rlft.llm.agent import load_llm_agent as load_text_agent

MovePolicy = Literal["constrained", "generate"]
_STATS = ("moves", "free_legal", "unparsable", "illegal", "reasked", "fallbacks")


class GameLLMAgent:
    """An :class:`LLMAgent` plus a text view: an :class:`~rlft.core.agent.Agent` for board-game observations."""

    def __init__(self, llm: LLMAgent, view: Any, *, env: str = "", policy: MovePolicy = "constrained",
                 retries: int = 2, temperature: float = 1.0, audit: bool = False) -> None:
        if policy not in ("constrained", "generate"):
            raise PluginError(f"Unknown LLM move policy {policy!r}: use 'constrained' or 'generate'.")
        self.llm = llm
        self.view = view
        self.env = env
        self.policy: MovePolicy = policy
        self.retries = retries
        self.temperature = temperature
        self.audit = audit
        self.max_new_tokens = 2
        self.rng = np.random.default_rng(0)
        self.stats: dict[str, int] = dict.fromkeys(_STATS, 0)

    @property
    def model(self) -> Any:
        return self.llm.model

    @property
    def tokenizer(self) -> Any:
        return self.llm.tokenizer

    def reset_stats(self) -> None:
        self.stats = dict.fromkeys(_STATS, 0)

    def move_stats(self) -> dict[str, float]:
        """Counts and rates of the free model's moves (``illegal_rate`` covers unparsable and illegal)."""
        n = max(self.stats["moves"], 1)
        bad = self.stats["unparsable"] + self.stats["illegal"]
        return {**{k: float(v) for k, v in self.stats.items()}, "illegal_rate": bad / n,
                "fallback_rate": self.stats["fallbacks"] / n}

    # ----------------------------------------------------------------------------------------------------------

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        """A legal move for a board observation (text prompts are completed as by :class:`LLMAgent`)."""
        if isinstance(observation, str):
            return self.llm.act(observation, deterministic=deterministic)
        mask = check_mask(action_mask)
        if mask is not None:
            legal = [int(a) for a in np.flatnonzero(mask)]
        else:
            n = getattr(self.view, "n_actions", None)
            if n is None:
                raise PluginError("This game's text view has no n_actions: the LLM agent needs an action mask.")
            legal = list(range(int(n)))
        prompt = self.view.prompt(observation, mask)
        self.stats["moves"] += 1
        if self.policy == "constrained":
            if self.audit:
                self._classify(self.llm.complete([prompt], True, max_new_tokens=self.max_new_tokens)[0], legal)
            return self.choose(prompt, legal, deterministic)
        free = self._classify(self.llm.complete([prompt], deterministic, self.temperature,
                                                max_new_tokens=self.max_new_tokens)[0], legal)
        if free is not None:
            return free
        for _ in range(self.retries):
            again = self.view.parse_move(self.llm.complete([prompt], False, self.temperature,
                                                           max_new_tokens=self.max_new_tokens)[0])
            if again in legal:
                self.stats["reasked"] += 1
                return again
        self.stats["fallbacks"] += 1
        return self.choose(prompt, legal, deterministic)

    def _classify(self, completion: str, legal: list[int]) -> int | None:
        move = self.view.parse_move(completion)
        if move is None:
            self.stats["unparsable"] += 1
        elif move not in legal:
            self.stats["illegal"] += 1
        else:
            self.stats["free_legal"] += 1
            return move
        return None

    @torch.no_grad()
    def move_logprobs(self, prompt: str, legal: list[int]) -> torch.Tensor:
        """log p(move text | prompt) for each legal move (the sum over the move's tokens), one forward pass."""
        tok = self.tokenizer
        prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        moves = [tok(self.view.move_text(a), add_special_tokens=False)["input_ids"] for a in legal]
        width = len(prompt_ids) + max(len(m) for m in moves)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(legal), width), pad, dtype=torch.long)
        attn = torch.zeros((len(legal), width), dtype=torch.long)
        for i, m in enumerate(moves):
            seq = prompt_ids + m
            ids[i, :len(seq)] = torch.tensor(seq)
            attn[i, :len(seq)] = 1
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        logits = self.model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()
        self.model.train(was_training)
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        out = torch.zeros(len(legal))
        for i, m in enumerate(moves):
            positions = torch.arange(len(prompt_ids) - 1, len(prompt_ids) - 1 + len(m))
            out[i] = logp[i, positions, torch.tensor(m)].sum().cpu()
        return out

    def choose(self, prompt: str, legal: list[int], deterministic: bool = True) -> int:
        """Constrained decoding: the most likely legal move, or one sampled from the legal moves' distribution."""
        scores = self.move_logprobs(prompt, legal)
        if deterministic:
            return legal[int(torch.argmax(scores))]
        probs = torch.softmax(scores / self.temperature, dim=0).numpy().astype(np.float64)
        return legal[int(self.rng.choice(len(legal), p=probs / probs.sum()))]


def game_agent(llm: LLMAgent, meta: dict[str, Any]) -> GameLLMAgent:
    """A :class:`GameLLMAgent` for the env named in ``agent.json`` (``env``, optional ``move_policy``)."""

    env = str(meta["env"])
    return GameLLMAgent(llm, text_view(resolve_env(env)), env=env, policy=meta.get("move_policy", "constrained"),
                        retries=int(meta.get("retries", 2)), audit=bool(meta.get("audit", True)))


def load_llm_agent(folder: Path, meta: dict[str, Any], device: str) -> Any:
    """The ``llm`` agent loader: an :class:`LLMAgent`, or -- when ``agent.json`` names an ``env`` (an LLM trained on a
    game's text) -- a :class:`GameLLMAgent` that plays that env's observations through its text view."""

    agent = load_text_agent(folder, meta, device)
    return game_agent(agent, meta) if meta.get("env") else agent
