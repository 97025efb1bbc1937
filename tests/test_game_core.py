"""Self-play on the game-state core (``finetune.self_play.game_core``) is the PettingZoo game, faster: with the same
seeds and the same learner moves, the learner sees the same observations, masks, rewards and episode ends on the core
as on the PettingZoo env, over many games against every kind of opponent."""

from __future__ import annotations

import numpy as np
import pytest

from rlft.core.envs import resolve_env
from rlft.policy.config import SelfPlayConfig
from rlft.policy.games.core import CoreGame
from rlft.policy.games.selfplay import SelfPlayEnv


def trajectory(env_name: str, core: bool, steps: int) -> list[tuple[object, ...]]:
    plugin = resolve_env(env_name)
    cfg = SelfPlayConfig(opponents=["alphabeta:1", "greedy", "random"], pool_size=0, game_core=core)
    env = SelfPlayEnv(plugin, plugin.make(), cfg, seed=3)
    assert isinstance(env.env, CoreGame) == core
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=3)
    seen: list[tuple[object, ...]] = [(obs.tobytes(), env.action_masks().tobytes(), info["opponent"], info["seat"])]
    for _ in range(steps):
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        obs, reward, terminated, truncated, info = env.step(action)
        seen.append((obs.tobytes(), reward, terminated, truncated, info.get("result")))
        if terminated or truncated:
            obs, info = env.reset()
            seen.append((obs.tobytes(), info["opponent"], info["seat"]))
        seen.append(env.action_masks().tobytes())
    return seen


@pytest.mark.parametrize("env_name", ["connect_four", "tictactoe"])
def test_core_games_equal_the_pettingzoo_games(env_name: str) -> None:
    on_core, on_env = trajectory(env_name, True, 600), trajectory(env_name, False, 600)
    assert on_core == on_env
    results = [s[4] for s in on_core if len(s) == 5 and s[4] is not None]
    assert len(results) > 40 and {0.0, 1.0} <= set(results)  # many games, won (1) and lost (0)


def test_core_game_reports_the_pettingzoo_results() -> None:
    plugin = resolve_env("connect_four")
    game = CoreGame(__import__("rlft.envs.game_state", fromlist=["ConnectFourState"]).ConnectFourState, plugin.make())
    game.reset()
    for move in (0, 1, 0, 1, 0, 1):
        game.step(move)
    assert game.agent_selection == "player_0" and not any(game.terminations.values())
    assert game.observe("player_1")["action_mask"].sum() == 0  # not its turn
    game.step(0)  # four in column 0
    assert game.rewards == {"player_0": 1.0, "player_1": -1.0} and all(game.terminations.values())
    planes = game.observe("player_1")["observation"]
    assert planes[..., 1][:, 0].sum() == 4 and planes[..., 0][:, 1].sum() == 3  # seen from player_1's side
