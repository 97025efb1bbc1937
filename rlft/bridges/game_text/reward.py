"""The env reward: an LLM's move is played in the real PettingZoo game, and the game's outcome is the reward.

``game_outcome`` is a reward function with TRL's contract, for the ``rl`` stage (GRPO or RLOO). For each completion
it rebuilds the prompt's position in a fresh env of the plugin (the text view reads the position back from the prompt
and gives a move sequence that reaches it), parses the move, and:

* an unparsable completion or an illegal move scores ``illegal`` (default -2, below a loss) and is counted;
* a legal move is played; with ``play_out`` (default) the game continues to its end, once against every opponent in
  ``opponents`` (any agent specs: ``random``, ``perfect``, ``alphabeta:2``, a run folder; ``rollouts`` play-outs
  each), the LLM's own later moves played by ``rollout`` (an agent spec; empty: the opponent itself). The reward is
  the mean outcome: ``win`` (+1), ``draw`` (0) or ``loss`` (-1 by default; a larger penalty asks for safe moves
  first). Without ``play_out`` only the move's immediate result counts (a win on the spot scores ``win``).

So the reward of a move is a Monte-Carlo estimate of its value against the opponent mix, measured by the env itself.
All completions of one prompt at one training step share their random numbers (opponents' and play-outs' seeds):
equal moves get equal rewards, so the group-normalised advantage compares moves, not the opponents' dice.
It logs ``train/win_rate``, ``train/draw_rate``, ``train/loss_rate``, ``train/illegal_rate`` and
``train/unparsable_rate`` through TRL's ``log_metric`` (one game per completion), beside TRL's ``train/reward``.

Example (YAML)::

    rl:
      data: {source: game_text}
      rewards:
        - {fn: game_outcome, kwargs: {env: tictactoe, opponents: [random, perfect], rollout: perfect}}
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from rlft.bridges.game_text.agent import GameLLMAgent
from rlft.bridges.game_text.view import text_view
from rlft.core.envs import resolve_env
from rlft.llm.agent import LLMAgent
from rlft.llm.rewards import completion_text
from rlft.policy.agents import resolve_agent
from rlft.policy.games.play import play_game
from rlft.policy.report import result_of

_CACHE: dict[tuple[str, str], Any] = {}


class ScriptedThen:
    """Plays a fixed sequence of moves, then hands over to ``then`` (replays a position, then plays on)."""

    def __init__(self, moves: list[int], then: Any) -> None:
        self.moves = list(moves)
        self.then = then

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        if self.moves:
            return self.moves.pop(0)
        return self.then.act(observation, action_mask=action_mask, deterministic=deterministic)


def _agent(plugin: Any, env: Any, spec: str, seed: int) -> Any:
    """The agent for ``spec`` (built once), its random generator reseeded so a play-out depends on ``seed`` only."""

    key = (plugin.name, spec)
    if key not in _CACHE:
        _CACHE[key] = resolve_agent(spec, plugin, action_space=env.action_space(env.possible_agents[0]), seed=seed)
    agent = _CACHE[key]
    if isinstance(getattr(agent, "rng", None), np.random.Generator):
        agent.rng = np.random.default_rng(seed)
    return agent


def _env(spec: str, env_kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    key = (spec, repr(sorted(env_kwargs.items())))
    if key not in _CACHE:
        plugin = resolve_env(spec)
        _CACHE[key] = (plugin, plugin.make(**env_kwargs), text_view(plugin))
    return _CACHE[key]  # type: ignore[no-any-return]


def play_move(prompt: str, move: int | None, *, env: str = "tictactoe", opponent: str = "random",
              rollout: str = "", play_out: bool = True, seed: int = 0, env_kwargs: dict[str, Any] | None = None
              ) -> tuple[str, float]:
    """Play ``move`` from ``prompt``'s position in the real env; (``win``/``draw``/``loss``/``illegal``/..., return)."""

    plugin, game, view = _env(env, dict(env_kwargs or {}))
    if move is None:
        return "unparsable", 0.0
    history = view.replay(view.observation(prompt))
    first, second = game.possible_agents
    mover, other = (first, second) if len(history) % 2 == 0 else (second, first)
    game.reset(seed=seed)
    for a in history:
        game.step(a)
    mask = np.asarray(game.observe(mover)["action_mask"]).astype(bool)
    if not (0 <= move < len(mask) and mask[move]):
        return "illegal", 0.0
    opp = _agent(plugin, game, opponent, seed)
    own = _agent(plugin, game, rollout, seed + 1) if rollout else opp
    mine = history[0::2] if mover == first else history[1::2]
    theirs = history[1::2] if mover == first else history[0::2]
    if not play_out:
        own, opp = _Stop(), _Stop()
    result = play_game(game, {mover: ScriptedThen([*mine, move], own), other: ScriptedThen(theirs, opp)}, seed=seed)
    r = result.returns[mover]
    return result_of(r), float(r)


class _Stop:
    """Ends a play-out after the scored move (``play_out: false``)."""

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> Any:
        raise _GameCut


class _GameCut(Exception):
    pass


def game_outcome(prompts: list[Any], completions: list[Any], *, env: str = "tictactoe",
                 opponents: list[str] | None = None, rollout: str = "", play_out: bool = True, rollouts: int = 1,
                 win: float = 1.0, loss: float = -1.0, illegal: float = -2.0, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None,
                 log_metric: Callable[[str, float], None] | None = None, trainer_state: Any = None,
                 **_: Any) -> list[float | None]:
    """Reward of each completion's move, played in the real env (see the module docstring)."""
    opponents = list(opponents or ["random"])
    step = int(getattr(trainer_state, "global_step", 0) or 0)
    _, _, view = _env(env, dict(env_kwargs or {}))
    counts = dict.fromkeys(("win", "draw", "loss", "illegal", "unparsable"), 0)
    rewards: list[float | None] = []
    value = {"win": win, "draw": 0.0, "loss": loss}
    games = 0
    for prompt, completion in zip(prompts, completions):
        move = view.parse_move(completion_text(completion))
        # Common random numbers: every completion of a prompt meets the same opponent randomness, so completions
        # that play the same move get the same reward and GRPO's group comparison sees only the moves' difference.
        rng = np.random.default_rng([seed, step, zlib.crc32(str(prompt).encode())])
        outcomes: list[str] = []
        for opponent in opponents:
            for _k in range(max(rollouts, 1)):
                try:
                    kind, _outcome = play_move(str(prompt), move, env=env, opponent=opponent, rollout=rollout,
                                         play_out=play_out, seed=int(rng.integers(2**31)), env_kwargs=env_kwargs)
                except _GameCut:
                    kind = "draw"
                if kind in ("illegal", "unparsable"):
                    break
                outcomes.append(kind)
            if not outcomes:
                break
        if not outcomes:
            counts[kind] += 1
            games += 1
            rewards.append(illegal)
            continue
        for kind in outcomes:
            counts[kind] += 1
        games += len(outcomes)
        rewards.append(sum(value[k] for k in outcomes) / len(outcomes))
    if log_metric is not None and games:
        for kind, c in counts.items():  # per game played (an illegal or unparsable move counts as one game)
            log_metric(f"{kind}_rate", c / games)
    return rewards


def played_positions(model: Any, tokenizer: Any, *, env: str = "tictactoe", opponents: list[str] | None = None,
                     games: int = 100, seed: int = 0, env_kwargs: dict[str, Any] | None = None, **_: Any
                     ) -> list[str]:
    """Prompts of the positions a model meets in its own games: ``games`` per opponent, alternating seats.

    The model plays through :class:`~rlft.bridges.game_text.agent.GameLLMAgent` (constrained decoding): even
    games greedily, as evaluation does, odd games sampling its moves, for variety. Returns one prompt per position
    where the model was to move, in order of first appearance (distinct).
    """

    plugin, game, view = _env(env, dict(env_kwargs or {}))
    player = GameLLMAgent(LLMAgent(model, tokenizer), view, env=env)
    player.rng = np.random.default_rng(seed)
    first, second = game.possible_agents
    seen: dict[str, None] = {}
    for j, spec in enumerate(opponents or ["random"]):
        for i in range(games):
            me, them = (first, second) if i % 2 == 0 else (second, first)
            opponent = _agent(plugin, game, spec, seed + 7919 * j + i)
            result = play_game(game, {me: player, them: opponent}, seed=seed + 7919 * j + i, record=True,
                               deterministic={me: (i // 2) % 2 == 0, them: True})
            assert result.traces is not None  # record=True
            trace = result.traces[me]
            for obs, mask in zip(trace.observations[: len(trace.actions)], trace.masks):  # not the final position
                seen.setdefault(view.prompt(obs, mask))
    return list(seen)


game_outcome.self_play_prompts = played_positions  # type: ignore[attr-defined]
"""``rl.play_games`` asks the reward for the positions the model reaches in its own games (see rlft.llm.stages.rl)."""
