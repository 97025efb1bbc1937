"""The env hooks of two-player PettingZoo games (see :mod:`rlft.policy.hooks`).

Recording plays the agent against itself and keeps both seats; evaluation plays each opponent half the games in
each seat; fine-tuning trains in :class:`~rlft.policy.games.selfplay.SelfPlayEnv` envs against an opponent pool that
snapshots of the learner join, and checkpoints keep the pool.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.core.envs import EnvPlugin
from rlft.core.metrics import log
from rlft.policy.agents import check_agent_fits
from rlft.policy.config import FinetuneConfig
from rlft.policy.envs import SingleAgentAdapter
from rlft.policy.games.arena import evaluate_game, game_evaluator
from rlft.policy.games.play import record_game_episodes
from rlft.policy.games.pool import SnapshotCallback, load_pool, save_pool
from rlft.policy.games.ray_games import RayGames
from rlft.policy.games.selfplay import make_self_play_env, self_play_kwargs
from rlft.policy.report import AgentReport


@dataclass
class GameHooks:
    """A two-player game: both seats recorded, self-play training, W/D/L evaluation."""

    plugin: EnvPlugin
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def record(self, agent_spec: str, episodes: int, out: Path, *, seed: int, deterministic: bool = True,
               trust_pickle: bool = False, progress: bool = False) -> dict[str, float]:
        return record_game_episodes(self.plugin, self.plugin.make(**self.env_kwargs), agent_spec, episodes, out,
                                    seed=seed, deterministic=deterministic, trust_pickle=trust_pickle,
                                    progress=progress)

    def evaluate(self, agent: Any, episodes: int, *, seed: int, deterministic: bool = True,
                 opponents: list[str] | None = None, progress: bool = False, ray: RayGames | None = None
                 ) -> AgentReport:
        obs_space, act_space, _ = self.learner_spaces()
        check_agent_fits(agent, obs_space, act_space, self.plugin.name)
        if callable(getattr(agent, "reset_stats", None)):
            agent.reset_stats()
        if ray is not None and ray.actors > 0 and callable(getattr(agent, "move_stats", None)):
            log.warning("Playing in this process, not in Ray actors: the LLM agent's move counts are kept here.")
            ray = None
        per = evaluate_game(agent, self.plugin, self.env_kwargs, opponents or ["random"], episodes, seed=seed,
                            deterministic=deterministic, progress=progress, ray=ray)
        moves = agent.move_stats() if callable(getattr(agent, "move_stats", None)) else None  # LLM agents
        return AgentReport(per_opponent=per, moves=moves)

    def evaluator(self, cfg: FinetuneConfig, seed: int, name: str = "finetune") -> Any:
        return game_evaluator(self.plugin, self.env_kwargs, cfg.self_play, cfg.eval_episodes, seed, name)

    def adapter(self, cfg: FinetuneConfig, seed: int) -> SingleAgentAdapter:
        """The learner's seat of the game against the opponent pool (plain data, so subprocess envs get it too)."""
        return functools.partial(make_self_play_env, adapter_kwargs=self_play_kwargs(cfg.self_play, seed))

    def vectorised(self, venv: Any) -> Any:
        """In-process envs get their network opponents' replies batched across envs (one forward pass a step)."""
        from stable_baselines3.common.vec_env import DummyVecEnv

        from rlft.policy.games.batched import BatchedReplies

        return BatchedReplies(venv) if isinstance(venv, DummyVecEnv) else venv

    def learner_spaces(self) -> tuple[Any, Any, bool]:
        env = self.plugin.make(**self.env_kwargs)
        first = env.possible_agents[0]
        spaces = env.observation_space(first)["observation"], env.action_space(first), True
        env.close()
        return spaces

    def callbacks(self, runner: Any) -> list[Any]:
        return [SnapshotCallback(runner, runner.cfg.self_play)]

    def save_state(self, folder: Path, runner: Any) -> None:
        save_pool(folder / "pool", runner.model.get_env(), runner.last_snapshot)

    def load_state(self, folder: Path, runner: Any) -> None:
        if (folder / "pool").is_dir():
            runner.last_snapshot = load_pool(folder / "pool", runner.model.get_env())
