"""The self-play env step by step, checked against the board itself: move counts, what `info` says, results
recorded against the opponent that played, illegal actions out of range, and seeded resets."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from rlft.core.envs import resolve_env
from rlft.core.errors import IllegalActionError
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
