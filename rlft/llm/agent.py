"""An LLM as an rlft agent: ``rlft.load_agent(DIR)`` on an LLM run returns an :class:`LLMAgent`.

``agent.json`` of kind ``llm`` sits beside the Hugging Face files of every LLM stage folder and ``DIR/final``.
Today the agent completes text prompts (``act("12+34=") -> "46"``); game envs (issue: an LLM as the policy of a
game) plug in a text view that renders an observation as a prompt and parses the move back, on top of
:meth:`LLMAgent.complete`.

Example::

    agent = rlft.load_agent("runs/add")
    agent.act("12+34=")  # "46"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlft.core.errors import PluginError
from rlft.llm.generation import generate
from rlft.llm.model import load_model, load_tokenizer


class LLMAgent:
    """A causal LM and its tokenizer, completing prompts greedily (``deterministic``) or by sampling."""

    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any] | None = None,
                 max_new_tokens: int = 32) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta or {}
        self.max_new_tokens = max_new_tokens

    def complete(self, prompts: list[str], deterministic: bool = True, temperature: float = 1.0,
                 max_new_tokens: int | None = None) -> list[str]:
        """Completions (new text only) for a batch of prompts."""

        return generate(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens or self.max_new_tokens,
                        sample=not deterministic, temperature=temperature)

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        """Complete one text observation. Env observations need a text view (not part of this agent yet)."""
        if not isinstance(observation, str):

            raise PluginError("This LLM agent completes text prompts; an env observation needs a text view that "
                              "renders it as a prompt and parses the move back.")
        return self.complete([observation], deterministic)[0]


def load_llm_agent(folder: Path, meta: dict[str, Any], device: str) -> LLMAgent:
    """An :class:`LLMAgent` from an LLM stage folder (a Hugging Face folder with ``agent.json`` of kind ``llm``).

    The ``llm`` agent loader (:data:`rlft.core.agent.AGENT_LOADERS`) is
    :func:`rlft.bridges.game_text.agent.load_llm_agent`, which wraps this one: an LLM trained on a game's text plays
    that game's observations through its text view.
    """

    model = load_model(str(folder), what="the agent folder").to(device)
    model.eval()
    return LLMAgent(model, load_tokenizer(str(folder), "the agent folder"), meta)
