"""Text views of the built-in games (render -> parse round trips on positions of real games, move parsing, replay
into the real env), and recorded games -> prompt/completion text datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlft.bridges.game_text.convert import games_to_text
from rlft.bridges.game_text.view import TextView, text_view
from rlft.core.envs import EnvPlugin, resolve_env
from rlft.core.errors import PluginError
from rlft.policy.agents import RandomAgent
from rlft.policy.games.play import play_game

GAMES = ["tictactoe", "connect_four"]


class _Checker:
    """A random player that checks the text view on every position it is shown."""

    def __init__(self, plugin: EnvPlugin, view: Any, seed: int) -> None:
        self.plugin, self.view, self.random, self.positions = plugin, view, RandomAgent(seed=seed), 0

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        prompt = self.view.prompt(observation, action_mask)
        np.testing.assert_array_equal(self.view.observation(prompt), np.asarray(observation))
        env = self.plugin.make()
        env.reset()
        for a in self.view.replay(observation):
            env.step(a)
        np.testing.assert_array_equal(env.observe(env.agent_selection)["observation"], observation)
        self.positions += 1
        return int(self.random.act(observation, action_mask))


@pytest.mark.parametrize("game", GAMES)
def test_prompt_round_trips_and_replays_in_the_real_env(game: str) -> None:
    plugin = resolve_env(game)
    view = text_view(plugin)
    assert isinstance(view, TextView)
    env = plugin.make()
    checkers = {a: _Checker(plugin, view, seed=i) for i, a in enumerate(env.possible_agents)}
    for g in range(25):
        play_game(env, checkers, seed=g)  # type: ignore[arg-type]
    assert sum(c.positions for c in checkers.values()) > 100


@pytest.mark.parametrize("game", GAMES)
def test_move_text_parses_back_and_junk_is_unparsable(game: str) -> None:
    view = text_view(resolve_env(game))
    n = 9 if game == "tictactoe" else 7
    for a in range(n):
        assert view.parse_move(view.move_text(a)) == a
        assert view.parse_move(f"  {view.move_text(a)}</s>") == a
    for junk in ("", "X", ">>", "..", str(n)):
        assert view.parse_move(junk) is None
    with pytest.raises(ValueError):
        view.observation("not a board")


def test_tictactoe_prompt_format() -> None:
    view = text_view(resolve_env("tictactoe"))
    planes = np.zeros((3, 3, 2), dtype=np.int8)
    planes[1, 1, 0] = 1  # X (the mover's opponent) in the centre: O to move
    planes[1, 1] = [0, 1]
    assert view.prompt(planes) == "012|3X5|678 O>"
    assert view.replay(planes) == [4]


def test_env_without_text_view_is_a_clear_error_and_plugins_supply_their_own() -> None:
    with pytest.raises(PluginError, match="text view"):
        text_view(resolve_env("cartpole"))
    from rlft.envs.text_views import TicTacToeText

    class Lower(TicTacToeText):
        def prompt(self, observation: Any, action_mask: Any = None) -> str:
            return super().prompt(observation).lower()

    custom = EnvPlugin(name="ttt-lower", factory="rlft.envs.tictactoe:make_env", extras={"text_view": Lower})
    assert text_view(custom).prompt(np.zeros((3, 3, 2))) == "012|345|678 x>"


def test_recorded_games_convert_to_text(tmp_path: Path) -> None:
    from rlft.envs.board_agents import planes_to_bits
    from rlft.envs.tictactoe import best_moves
    from rlft.policy.games.play import record_game_episodes

    plugin = resolve_env("tictactoe")
    record_game_episodes(plugin, plugin.make(), "perfect:0.5", 40, tmp_path / "games", seed=3)
    view = text_view(plugin)
    raw = games_to_text(tmp_path / "games", plugin, tmp_path / "raw.jsonl", test_fraction=0.25,
                        transcripts=tmp_path / "docs.jsonl", seed=0)
    rows = [json.loads(line) for line in (tmp_path / "raw.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in Path(raw["test_out"]).read_text().splitlines()]
    assert raw["rows"] == len(rows) and raw["test_rows"] == len(test) > 0
    moves = len(rows) + len(test)
    assert 40 * 5 <= moves <= 40 * 9  # both seats: every move of every game
    docs = [json.loads(line)["text"] for line in (tmp_path / "docs.jsonl").read_text().splitlines()]
    assert len(docs) == 80 and sum(d.count(">") for d in docs) == moves
    for row in rows:
        assert set(row) == {"prompt", "completion", "legal", "result"}
        assert view.parse_move(row["completion"]) in row["legal"]
        assert row["result"] in ("win", "draw", "loss")
    # Relabelled by the perfect player, every completion is an optimal move; losers' moves can be filtered out.
    labelled = games_to_text(tmp_path / "games", plugin, tmp_path / "perfect.jsonl", label_agent="perfect",
                             results=("win", "draw"), seed=0)
    rows = [json.loads(line) for line in (tmp_path / "perfect.jsonl").read_text().splitlines()]
    assert labelled["rows"] == len(rows) < moves
    for row in rows:
        me, opp = planes_to_bits(view.observation(row["prompt"]))
        assert int(row["completion"]) in best_moves(me, opp)
        assert row["result"] != "loss"


def test_games_to_text_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rlft.cli.main import main

    assert main(["record", "--env", "connect_four", "--agent", "greedy", "--episodes", "6", "--out",
                 str(tmp_path / "c4")]) == 0
    assert main(["games-to-text", str(tmp_path / "c4"), "--env", "connect_four", "--out", str(tmp_path / "c4.jsonl"),
                 "--transcripts", str(tmp_path / "docs.jsonl")]) == 0
    assert "wrote" in capsys.readouterr().out
    view = text_view(resolve_env("connect_four"))
    rows = [json.loads(line) for line in (tmp_path / "c4.jsonl").read_text().splitlines()]
    assert len(rows) >= 6 * 7
    for row in rows:
        assert view.parse_move(row["completion"]) in row["legal"]
        assert view.prompt(view.observation(row["prompt"])) == row["prompt"]
