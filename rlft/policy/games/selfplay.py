"""Self-play: a PettingZoo AEC game seen from the learner's seat, as a single-agent Gymnasium env for PPO.

The learner sees its own seat (observation planes, ``action_masks()`` for MaskablePPO) and the opponent's moves
happen inside ``step``. Seats alternate every episode, and the reward is what PettingZoo gives the learner's seat in
AEC order (summed over the learner's move and the opponent's replies). A game the env cuts short (its truncation, a
move limit) ends the episode as truncated, one that ends by the rules as terminated. An illegal learner action raises
:class:`~rlft.core.errors.IllegalActionError`: MaskablePPO never samples one, so one reaching the env is a bug.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np

from rlft.core import plugins
from rlft.core.agent import checked_action
from rlft.core.config import from_dict
from rlft.core.envs import EnvPlugin
from rlft.core.errors import IllegalActionError, PluginError
from rlft.policy.agents import PolicyAgent, RandomAgent, resolve_agent
from rlft.policy.config import SelfPlayConfig
from rlft.policy.games.core import CoreGame
from rlft.policy.games.play import outcome
from rlft.policy.games.pool import OpponentPool, PoolEntry, policy_from_payload


class SelfPlayEnv(gym.Env[np.ndarray, int]):
    """A two-player AEC game seen from the learner's seat (see the module docstring)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, plugin: EnvPlugin, env: Any, cfg: SelfPlayConfig, seed: int = 0) -> None:
        self.plugin = plugin
        self.cfg = cfg
        state_cls = plugin.extras.get("game_state")
        self._state_cls = plugins.import_object(state_cls, "game state") if isinstance(state_cls, str) else state_cls
        self.env = CoreGame(self._state_cls, env) if cfg.game_core and self._state_cls is not None else env
        self.seats = list(env.possible_agents)
        if len(self.seats) != 2:
            raise PluginError(f"Self-play needs a two-player game; '{plugin.name}' has agents {self.seats}.")
        first = self.seats[0]
        space = env.observation_space(first)
        if not (isinstance(space, gym.spaces.Dict) and {"observation", "action_mask"} <= set(space.spaces)):
            raise PluginError(f"Self-play needs observations {{'observation', 'action_mask'}}; '{plugin.name}' gives "
                              f"{space}.")
        self.observation_space = space["observation"]
        self.action_space = env.action_space(first)
        fixed = {spec: resolve_agent(spec, plugin, action_space=self.action_space, seed=seed + i)
                 for i, spec in enumerate(cfg.opponents)}
        self.pool = OpponentPool(cfg, fixed)
        self._fallback = PoolEntry("random", RandomAgent(self.action_space, seed=seed), fixed=True)
        self._rng = np.random.default_rng(seed)
        self._payloads: dict[str, dict[str, Any]] = {}
        self.moves = 0
        """Moves played in the PettingZoo env so far, by both seats (the learner's and the opponents')."""
        self._episode = 0
        self.learner = first
        self.opponent = self._fallback
        self._mask: np.ndarray = np.ones(int(self.action_space.n), dtype=np.bool_)  # type: ignore[attr-defined]
        self._planes: np.ndarray | None = None
        self._reply: int | None = None

    # -- snapshots (called through VecEnv.env_method) -------------------------------------------------------
    def add_snapshot(self, payload: dict[str, Any]) -> None:
        """Add a frozen copy of the learner (see :func:`snapshot_payload`) to the opponent pool."""
        agent = policy_from_payload(payload, self.observation_space, self.action_space)
        self.pool.add_snapshot(payload["key"], agent)
        live = {e.key for e in self.pool.snapshots}
        self._payloads = {k: v for k, v in {**self._payloads, payload["key"]: payload}.items() if k in live}

    def pool_stats(self) -> dict[str, float]:
        """The learner's recent score rate against each opponent in this env's pool."""
        return {e.key: e.win_rate for e in self.pool.entries}

    def pool_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the pool: the snapshots (payloads, oldest first) and the decayed results."""
        return {"snapshots": [self._payloads[e.key] for e in self.pool.snapshots if e.key in self._payloads],
                "results": {e.key: [e.score, e.games] for e in self.pool.entries}}

    def set_pool_results(self, results: dict[str, list[float]]) -> None:
        """Restore the decayed results of :meth:`pool_state` (after the snapshots were added back)."""
        for e in self.pool.entries:
            if e.key in results:
                e.score, e.games = (float(v) for v in results[e.key])

    # -- batched replies (rlft.policy.games.batched) ----------------------------------------------------------
    def position_after(self, action: int) -> Any:
        """The game state after the learner's ``action``, when the reply is a network's and can be batched (the
        env offers a game state, the opponent is a policy agent, the game goes on); else None."""
        if self._state_cls is None or self._planes is None or not isinstance(self.opponent.agent, PolicyAgent) or \
                not (0 <= action < len(self._mask) and self._mask[action]):
            return None
        now = self.env.state if isinstance(self.env, CoreGame) else self._state_cls.from_observation(self._planes)
        position = now.play(action)
        return position if position.terminal_value() is None else None

    def queue_reply(self, action: int) -> None:
        """The opponent's reply to the learner's next move, computed outside (in a batch); played by ``step``."""
        self._reply = action

    # -- Gymnasium API ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.learner = self.seats[self._episode % 2]
        self._episode += 1
        self.opponent = self.pool.sample(self._rng) or self._fallback
        self.env.reset(seed=seed)
        reward, done = self._opponent_moves()
        if done:  # a game the opponent finishes before the learner moves is not a game; start another
            return self.reset()
        return self._observe(), {"opponent": self.opponent.key, "seat": self.learner}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not (0 <= action < len(self._mask) and self._mask[action]):
            raise IllegalActionError(
                f"The learner chose action {action}, which the action mask forbids (legal: "
                f"{np.flatnonzero(self._mask).tolist()}). Policies must sample from masked logits."
            )
        self.env.step(action)
        self.moves += 1
        reward = float(self.env.rewards.get(self.learner, 0.0))
        done = self._game_over()
        if not done:
            more, done = self._opponent_moves()
            reward += more
        info: dict[str, Any] = {"opponent": self.opponent.key, "seat": self.learner}
        if done:
            self.pool.record(self.opponent.key, outcome(reward))
            info["result"] = outcome(reward)
        # A game cut short by the env (a move limit) is truncated, not ended: PPO bootstraps its value.
        truncated = done and not self.env.terminations[self.learner]
        return self._observe(), reward, done and not truncated, truncated, info

    def action_masks(self) -> np.ndarray:
        """Legal actions of the learner now (sb3-contrib's MaskablePPO convention)."""
        return self._mask.copy()

    def close(self) -> None:
        self.env.close()

    # -- internals ---------------------------------------------------------------------------------------------
    def _game_over(self) -> bool:
        return bool(self.env.terminations.get(self.learner, True) or self.env.truncations.get(self.learner, True))

    def _opponent_moves(self) -> tuple[float, bool]:
        """Let the opponent move until it is the learner's turn or the game is over; the learner's reward."""
        reward = 0.0
        while not self._game_over() and self.env.agent_selection != self.learner:
            seat = self.env.agent_selection
            obs = self.env.observe(seat)
            if self.env.terminations[seat] or self.env.truncations[seat]:
                self.env.step(None)
            else:
                action, self._reply = self._reply, None
                if action is None:
                    action = checked_action(self.opponent.agent, obs["observation"], obs["action_mask"],
                                            self.opponent.deterministic)
                elif not obs["action_mask"][action]:
                    raise IllegalActionError(f"The batched reply {action} is illegal here: the env's game state "
                                             "disagrees with the env (a bug in its game_state plugin).")
                self.env.step(int(action))
                self.moves += 1
            reward += float(self.env.rewards.get(self.learner, 0.0))
        return reward, self._game_over()

    def _observe(self) -> np.ndarray:
        obs = self.env.observe(self.learner)
        self._mask = np.asarray(obs["action_mask"]).astype(bool)
        self._planes = np.asarray(obs["observation"])
        self._reply = None
        return self._planes


def make_self_play_env(plugin: EnvPlugin, env: Any, adapter_kwargs: dict[str, Any]) -> gym.Env[Any, Any]:
    """The single-seat adapter of two-player games (``functools.partial`` it with :func:`self_play_kwargs`)."""

    cfg = adapter_kwargs.get("self_play")
    if not isinstance(cfg, SelfPlayConfig):
        cfg = from_dict(SelfPlayConfig, dict(cfg or {}), source="finetune.self_play")
    return SelfPlayEnv(plugin, env, cfg, seed=int(adapter_kwargs.get("seed", 0)))


def self_play_kwargs(cfg: SelfPlayConfig, seed: int) -> dict[str, Any]:
    """Adapter settings for the training envs (plain data, so subprocess envs get them too)."""
    return {"self_play": dataclasses.asdict(cfg), "seed": int(seed)}
