"""Games in Ray actors (``--ray-actors K``, ``eval.ray_actors``) give exactly the in-process results.

The first tests need no Ray: a game depends on its seed alone, so any slice of a match replays as it would inside
the whole match, and a worker rebuilds agents under the caller's trust rules. The others (slow: ~20 s on the shared
2-core machine, most of it starting Ray and its actors) start a local Ray with 2 actors -- skipped without
``rlft[ray]`` or where Ray cannot start -- and compare W/D/L counts, the arena's win matrix and Elo, and the CLI's
JSON with the in-process ones.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rlft.cli.main import main
from rlft.core import plugins
from rlft.core.envs import resolve_env
from rlft.core.errors import PluginError
from rlft.policies.checkpoint import save_policy
from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.agents import resolve_agent
from rlft.policy.games.arena import arena, evaluate_game, match, record_of
from rlft.policy.games.play import play_games
from rlft.policy.games.ray_games import GameWorker, MatchJob, Player, RayGames
from rlft.policy.hooks import env_hooks

TTT = resolve_env("tictactoe")
OPPONENTS = ["alphabeta:1", "random"]
BOT = '''
import numpy as np

class FirstLegal:
    def act(self, observation, action_mask=None, deterministic=True):
        return int(np.flatnonzero(action_mask)[0])
'''


def _fresh(spec: str, seed: int) -> object:
    return resolve_agent(spec, TTT, action_space=TTT.make().action_space("player_1"), seed=seed)


def test_any_slice_of_a_match_replays_its_games() -> None:
    env = TTT.make()
    whole = play_games(env, _fresh("random", 1), _fresh("alphabeta:1", 2), range(12), seed=3)
    # fresh agents with other construction seeds, the match cut in three: the same games
    parts = [play_games(env, _fresh("random", 9), _fresh("alphabeta:1", 8), range(a, b), seed=3)
             for a, b in [(0, 5), (5, 6), (6, 12)]]
    assert [r for part in parts for r in part] == whole
    assert len(set(whole)) > 1  # varied games, so the equality says something
    record = match(env, _fresh("random", 1), _fresh("alphabeta:1", 2), 12, seed=3)
    assert (record.wins, record.draws, record.losses) == (whole.count(1.0), whole.count(0.0), whole.count(-1.0))


def test_an_agent_object_without_a_spec_plays_in_this_process(caplog: pytest.LogCaptureFixture) -> None:
    agent = _fresh("random", 0)
    with caplog.at_level(logging.WARNING, logger="rlft"):
        per = evaluate_game(agent, TTT, {}, OPPONENTS, 6, seed=0, ray=RayGames(actors=2))
    assert "Playing in this process" in caplog.text and "is an object" in caplog.text
    assert per["random"].to_json() == evaluate_game(agent, TTT, {}, OPPONENTS, 6, seed=0)["random"].to_json()


def test_workers_rebuild_agents_under_the_callers_trust_rules(tmp_path: Path) -> None:
    (tmp_path / "bot.py").write_text(BOT)
    spec = f"{tmp_path / 'bot.py'}:FirstLegal"
    job = MatchJob(Player("random", load=True), Player(spec, 7919), 4, seed=0)
    with plugins.code_named_by("a test's file"):  # e.g. specs read from a run's saved config
        refused = plugins.trust_rules()
        with plugins.trusting(True):
            trusted = plugins.trust_rules()
    with pytest.raises(PluginError, match="--trust-code"):
        GameWorker("tictactoe", {}, refused).play(job, 0, 4)
    local = evaluate_game(_fresh("random", 0), TTT, {}, [spec], 4, seed=0)[spec]
    assert record_of(GameWorker("tictactoe", {}, trusted).play(job, 0, 4)).to_json() == local.to_json()


def test_ray_actors_flag_is_checked() -> None:
    assert main(["arena", "random", "greedy", "--env", "tictactoe", "--ray-actors", "-1", "-q"]) == 2


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rlft[ray]')")
    from rlft.policy.ray_env import connect_ray

    try:
        connect_ray(min_cpus=2)
    except Exception as e:  # any failure to start means: no Ray here
        pytest.skip(f"a local Ray cannot start here: {e}")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained masked policy on tic-tac-toe (its sampled moves draw from torch's RNG)."""
    obs_space, act_space, _ = env_hooks("tictactoe").learner_spaces()
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("policy") / "agent"
    save_policy(folder, build_policy(PolicySpec(net_arch=[16]), obs_space, act_space, masked=True),
                PolicySpec(net_arch=[16]), masked=True, env="tictactoe")
    return folder


def _json(per: dict) -> dict:
    return {k: r.to_json() for k, r in per.items()}


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_evaluation_in_two_actors_equals_in_process() -> None:
    local = evaluate_game(_fresh("random", 5), TTT, {}, OPPONENTS, 12, seed=3)
    remote = evaluate_game(None, TTT, {}, OPPONENTS, 12, seed=3, ray=RayGames(actors=2, agent="random"))
    assert _json(remote) == _json(local)


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_arena_in_two_actors_equals_in_process() -> None:
    players = {p: p for p in ["random", "alphabeta:1", "greedy"]}
    local = arena(TTT, {}, players, 12, seed=1)
    assert arena(TTT, {}, players, 12, seed=1, ray=RayGames(actors=2)) == local
    assert local["elo"]["alphabeta:1"] > local["elo"]["random"]


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_cli_eval_with_ray_actors_prints_the_in_process_result(policy_dir: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    # a policy loaded from its folder in each actor, sampling its moves: torch's RNG is seeded per game too
    args = ["eval", str(policy_dir), "--opponent", "alphabeta:1", "--opponent", "random", "--episodes", "12",
            "--sample", "-q", "--json"]
    results = []
    for extra in ([], ["--ray-actors", "2"]):
        assert main([*args, *extra]) == 0
        results.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert results[0] == results[1]
