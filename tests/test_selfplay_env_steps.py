"""The self-play env step by step, checked against the board itself: move counts, what `info` says, results
recorded against the opponent that played, illegal actions out of range, and seeded resets."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlft.core.envs import EnvPlugin, resolve_env
from rlft.core.errors import IllegalActionError
from rlft.policy.config import SelfPlayConfig
from rlft.policy.envs import make_gym_env
from rlft.policy.games.pool import OpponentPool
from rlft.policy.games.selfplay import SelfPlayEnv, make_self_play_env


class FirstLegal:
    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        return int(np.flatnonzero(action_mask)[0])


def env_with(opponents: dict[str, Any]) -> SelfPlayEnv:
    adapter = functools.partial(make_self_play_env, adapter_kwargs={"self_play": {"opponents": [], "pool_size": 1}})
    env = make_gym_env(resolve_env("tictactoe"), {}, adapter)
    assert isinstance(env, SelfPlayEnv)
    env.pool = OpponentPool(env.cfg, opponents)
    return env


def play_out(env: SelfPlayEnv, seed: int | None) -> tuple[np.ndarray, list[dict[str, Any]], list[bool]]:
    obs, info = env.reset(seed=seed)
    infos, truncs, done = [info], [], False
    while not done:
        obs, _, done, truncated, info = env.step(int(np.flatnonzero(env.action_masks())[-1]))
        infos.append(info)
        truncs.append(truncated)
    return obs, infos, truncs


def test_moves_info_and_results_match_the_board() -> None:
    env = env_with({"first": FirstLegal()})
    for game in range(2):  # the learner plays each seat once
        before = env.moves
        obs, infos, truncs = play_out(env, seed=game)
        assert env.moves - before == int(np.asarray(obs).sum())  # one piece on the board per move, both seats
        assert all(i["opponent"] == "first" and i["seat"] == infos[0]["seat"] for i in infos)
        assert not any(truncs)  # tic-tac-toe ends by termination, never truncation
        assert "result" in infos[-1] and all("result" not in i for i in infos[:-1])
    assert {infos[0]["seat"] for infos in [play_out(env, seed=5)[1], play_out(env, seed=6)[1]]} == set(env.seats)
    (entry,) = env.pool.entries
    assert entry.games > 3.5  # four finished games recorded against the opponent that played them (decayed)


def test_an_action_past_the_board_is_an_illegal_action() -> None:
    env = env_with({"first": FirstLegal()})
    env.reset(seed=0)
    with pytest.raises(IllegalActionError):
        env.step(9)
    with pytest.raises(IllegalActionError):
        env.step(-1)


def test_seeded_resets_repeat_opponents_and_seats() -> None:
    def episodes(seed: int) -> list[tuple[str, str]]:
        env = env_with({"a": FirstLegal(), "b": FirstLegal(), "c": FirstLegal()})
        out = []
        for i in range(8):
            info = play_out(env, seed=seed if i == 0 else None)[1][0]
            out.append((info["opponent"], info["seat"]))
        return out

    first = episodes(3)
    assert episodes(3) == first
    assert len({o for o, _ in first}) > 1  # the pool really was sampled
    assert all(a[1] != b[1] for a, b in zip(first, first[1:]))  # seats alternate


class Race:
    """A two-seat AEC game of this test, with what tic-tac-toe lacks: a seeded random start, rewards on every move
    and a move limit. A shared counter starts at 0, 1 or 2 (from the reset seed); a move adds 1 or 2 and pays the
    mover +0.25 and the other seat -0.1; reaching ``target`` wins (+1 / -1) and ends the game; after ``max_moves``
    moves the game is truncated. Stepping a finished seat takes ``None``, as in PettingZoo."""

    possible_agents = ["p0", "p1"]
    metadata: dict[str, Any] = {}

    def __init__(self, target: int = 100, max_moves: int = 100) -> None:
        self.target, self.max_moves = target, max_moves
        self.reset_seeds: list[int | None] = []
        self._obs: Any = gym.spaces.Dict({"observation": gym.spaces.Box(0, 200, (1,), np.float32),
                                     "action_mask": gym.spaces.Box(0, 1, (2,), np.int8)})

    def observation_space(self, agent: str) -> Any:
        return self._obs

    def action_space(self, agent: str) -> Any:
        return gym.spaces.Discrete(2)

    def reset(self, seed: int | None = None, options: Any = None) -> None:
        self.reset_seeds.append(seed)
        self.count, self.moves, self.agent_selection = int(np.random.default_rng(seed).integers(3)), 0, "p0"
        self.rewards = dict.fromkeys(self.possible_agents, 0.0)
        self.terminations = dict.fromkeys(self.possible_agents, False)
        self.truncations = dict.fromkeys(self.possible_agents, False)

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        return {"observation": np.array([self.count], np.float32), "action_mask": np.ones(2, np.int8)}

    def step(self, action: int | None) -> None:
        me = self.agent_selection
        other = "p1" if me == "p0" else "p0"
        self.agent_selection = other
        if self.terminations[me] or self.truncations[me]:
            assert action is None, "a finished seat is stepped with None"
            self.rewards = dict.fromkeys(self.possible_agents, 0.0)
            return
        self.count += int(action) + 1  # type: ignore[arg-type]
        self.moves += 1
        self.rewards = {me: 0.25, other: -0.1}
        if self.count >= self.target:
            self.rewards = {me: 1.0, other: -1.0}
            self.terminations = dict.fromkeys(self.possible_agents, True)
        elif self.moves >= self.max_moves:
            self.truncations = dict.fromkeys(self.possible_agents, True)

    def close(self) -> None:
        pass


class Recorder:
    """Plays the smallest step and remembers how it was asked to play."""

    def __init__(self) -> None:
        self.asked: list[bool] = []

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        self.asked.append(deterministic)
        return 0


def race(game: Race, opponent: Any = None, deterministic: bool = True) -> SelfPlayEnv:
    from rlft.policy.games.pool import PoolEntry

    env = SelfPlayEnv(EnvPlugin("race", Race), game, SelfPlayConfig(opponents=[], pool_size=0))
    env.pool = OpponentPool(env.cfg, {})
    env.pool.entries = [PoolEntry("rec", opponent or Recorder(), fixed=True, deterministic=deterministic)]
    return env


def test_the_learner_gets_the_rewards_of_its_move_and_of_the_reply() -> None:
    env = race(Race())
    env.reset(seed=0)
    assert env.learner == "p0"
    assert env.step(0)[1] == pytest.approx(0.25 - 0.1)  # its own move's +0.25, then the reply's -0.1
    env.reset(seed=0)
    assert env.learner == "p1"  # the opponent moved first: that -0.1 came before the learner's first move
    assert env.step(0)[1] == pytest.approx(0.25 - 0.1)


def test_a_win_and_a_loss_end_the_episode_as_terminated() -> None:
    env = race(Race(target=3))
    starts = set()
    for seed in range(12):  # seats alternate, so only even episodes (learner p0) are played here
        env._episode = 0
        obs, _ = env.reset(seed=seed)
        start = int(np.random.default_rng(seed).integers(3))
        assert obs[0] == start
        starts.add(start)
        _, reward, terminated, truncated, info = env.step(1)  # the learner adds 2
        if start >= 1:  # it reaches 3 and wins on its move
            assert (reward, terminated, truncated, info["result"]) == (1.0, True, False, 1.0)
        else:  # it reaches 2; the reply's +1 reaches 3 and the opponent wins
            assert (reward, terminated, truncated, info["result"]) == (pytest.approx(0.25 - 1.0), True, False, 0.0)
    assert 0 in starts and len(starts) > 1  # both cases were played


def test_a_game_cut_by_the_move_limit_is_truncated_not_terminated() -> None:
    env = race(Race(max_moves=3))
    env.reset(seed=0)  # learner p0: moves 1 (learner), 2 (reply), 3 (learner) hits the limit
    assert env.step(0)[2:4] == (False, False)
    _, reward, terminated, truncated, info = env.step(0)
    assert (terminated, truncated) == (False, True) and reward == 0.25 and "result" in info


def test_the_reset_seed_reaches_the_game() -> None:
    game = Race()
    env = race(game)
    env.reset(seed=7)
    env.reset()
    assert game.reset_seeds == [7, None]


@pytest.mark.parametrize("deterministic", [True, False])
def test_the_opponent_plays_as_its_pool_entry_says(deterministic: bool) -> None:
    rec = Recorder()
    env = race(Race(), rec, deterministic=deterministic)
    env.reset(seed=0)
    env.step(0)
    env.step(0)
    assert rec.asked == [deterministic, deterministic]


def test_a_game_without_masked_dict_observations_is_a_plugin_error() -> None:
    from rlft.core.errors import PluginError

    for space in (gym.spaces.Box(0, 1, (3,)), gym.spaces.Dict({"observation": gym.spaces.Box(0, 1, (3,))})):
        game = Race()
        game._obs = space
        with pytest.raises(PluginError, match="action_mask"):
            SelfPlayEnv(EnvPlugin("race", Race), game, SelfPlayConfig(opponents=[], pool_size=0))
    lonely = Race()
    lonely.possible_agents = ["p0"]
    with pytest.raises(PluginError, match="two-player"):
        SelfPlayEnv(EnvPlugin("race", Race), lonely, SelfPlayConfig(opponents=[], pool_size=0))


def opponents_env(seed: int) -> SelfPlayEnv:
    adapter = functools.partial(make_self_play_env, adapter_kwargs={
        "self_play": {"opponents": ["perfect:0.5", "random"], "pool_size": 0}, "seed": seed})
    env = make_gym_env(resolve_env("tictactoe"), {}, adapter)
    assert isinstance(env, SelfPlayEnv)
    return env


def test_fixed_opponents_come_from_the_env_plugin_seeded_by_the_env_seed() -> None:
    from rlft.envs.tictactoe import Perfect

    env = opponents_env(3)
    assert env.moves == 0 and [e.key for e in env.pool.entries] == ["perfect:0.5", "random"]
    assert isinstance(env.pool.entries[0].agent, Perfect) and all(e.fixed for e in env.pool.entries)

    def games(env: SelfPlayEnv) -> list[tuple[str, bytes]]:
        out = []
        for i in range(6):
            obs, _, _ = play_out(env, seed=i)
            out.append((env.opponent.key, np.asarray(obs).tobytes()))
        return out

    first = games(env)
    assert games(opponents_env(3)) == first  # the same seed: the same opponents playing the same moves
    assert games(opponents_env(4)) != first


def test_a_pool_without_snapshots_yet_plays_the_random_fallback() -> None:
    adapter = functools.partial(make_self_play_env, adapter_kwargs={"self_play": {"opponents": [], "pool_size": 2}})
    env = make_gym_env(resolve_env("tictactoe"), {}, adapter)
    assert isinstance(env, SelfPlayEnv)
    kinds = set()
    for seed in range(4):
        _, infos, _ = play_out(env, seed=seed)
        kinds.add(infos[0]["opponent"])
        mask = env.action_masks()
        assert mask.dtype == np.bool_ and mask.shape == (9,)
    assert kinds == {"random"}
    assert env.moves > 4 * 4  # both seats moved in every game
    first, again = (make_gym_env(resolve_env("tictactoe"), {}, adapter) for _ in range(2))
    assert [np.asarray(play_out(first, seed=s)[0]).tobytes() for s in range(4)] == \
        [np.asarray(play_out(again, seed=s)[0]).tobytes() for s in range(4)]  # the fallback is seeded too


def test_a_game_state_class_or_import_string_is_taken_from_the_plugin() -> None:

    class State:
        pass

    cfg = SelfPlayConfig(opponents=[], pool_size=2, game_core=False)  # resolution only: no core game
    assert SelfPlayEnv(EnvPlugin("race", Race, extras={"game_state": State}), Race(), cfg)._state_cls is State
    by_name = SelfPlayEnv(EnvPlugin("race", Race, extras={"game_state": "collections:OrderedDict"}), Race(), cfg)
    from collections import OrderedDict

    assert by_name._state_cls is OrderedDict
    assert SelfPlayEnv(EnvPlugin("race", Race), Race(), cfg)._state_cls is None
