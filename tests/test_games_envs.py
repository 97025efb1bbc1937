"""Built-in game plugins: PettingZoo API checks, and the scripted players' promises (win now, block now, perfect)."""

from __future__ import annotations

import numpy as np
import pytest

from rlft.core.envs import check_env, is_pettingzoo, resolve_env
from rlft.envs import BUILTIN_ENVS
from rlft.policy.agents import resolve_agent
from rlft.policy.games.arena import evaluate_game

GAMES = [name for name, plugin in BUILTIN_ENVS.items() if is_pettingzoo(plugin.make())]


def test_both_games_are_builtin() -> None:
    assert {"connect_four", "tictactoe"} <= set(GAMES)


@pytest.mark.parametrize("name", GAMES)
def test_api_test_and_seed_test_pass(name: str) -> None:
    check_env(resolve_env(name))  # raises EnvCheckError naming the broken rule


def c4_obs(me: list[tuple[int, int]], opp: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Connect Four planes with pieces at (row, col), row 5 = bottom, and the legal-column mask."""
    planes = np.zeros((6, 7, 2), dtype=np.int8)
    for r, c in me:
        planes[r, c, 0] = 1
    for r, c in opp:
        planes[r, c, 1] = 1
    mask = (planes[0, :, 0] + planes[0, :, 1] == 0).astype(np.int8)
    return planes, mask


def ttt_obs(me: list[int], opp: list[int]) -> tuple[np.ndarray, np.ndarray]:
    planes = np.zeros((3, 3, 2), dtype=np.int8)
    for a in me:
        planes[a // 3, a % 3, 0] = 1
    for a in opp:
        planes[a // 3, a % 3, 1] = 1
    mask = (planes[..., 0] + planes[..., 1] == 0).reshape(-1).astype(np.int8)
    return planes, mask


PLAYERS = ["greedy", "alphabeta:1", "alphabeta:2", "alphabeta:3"]


@pytest.mark.parametrize("spec", PLAYERS)
@pytest.mark.parametrize("seed", range(5))
def test_connect_four_players_take_the_immediate_win(spec: str, seed: int) -> None:
    # Three in a row on the bottom (cols 1-3): both 0 and 4 win; the opponent threatens col 6 vertically as well.
    obs, mask = c4_obs(me=[(5, 1), (5, 2), (5, 3)], opp=[(5, 6), (4, 6), (3, 6)])
    agent = resolve_agent(spec, resolve_env("connect_four"), seed=seed)
    assert agent.act(obs, action_mask=mask) in (0, 4)


@pytest.mark.parametrize("spec", PLAYERS)
@pytest.mark.parametrize("seed", range(5))
def test_connect_four_players_block_the_immediate_loss(spec: str, seed: int) -> None:
    # The opponent has three stacked in column 2; only col 2 stops the loss.
    obs, mask = c4_obs(me=[(5, 0), (5, 4), (5, 5)], opp=[(5, 2), (4, 2), (3, 2)])
    agent = resolve_agent(spec, resolve_env("connect_four"), seed=seed)
    assert agent.act(obs, action_mask=mask) == 2


@pytest.mark.parametrize("spec", [*PLAYERS, "perfect"])
def test_tictactoe_players_win_then_block(spec: str) -> None:
    agent = resolve_agent(spec, resolve_env("tictactoe"), seed=0)
    obs, mask = ttt_obs(me=[0, 1], opp=[3, 4])  # 2 wins (top row); 5 would block
    assert agent.act(obs, action_mask=mask) == 2
    obs, mask = ttt_obs(me=[0, 8], opp=[3, 4])  # must block at 5
    assert agent.act(obs, action_mask=mask) == 5


def test_players_respect_the_mask() -> None:
    plugin = resolve_env("connect_four")
    obs, _ = c4_obs(me=[], opp=[])
    mask = np.zeros(7, dtype=np.int8)
    mask[6] = 1  # pretend only the last column is legal
    for spec in ["random", "greedy", "alphabeta:2"]:
        assert resolve_agent(spec, plugin, seed=0, action_space=plugin.make().action_space("player_0")).act(
            obs, action_mask=mask) == 6


def test_deeper_search_beats_random_and_perfect_never_loses() -> None:
    c4 = evaluate_game(resolve_agent("alphabeta:2", resolve_env("connect_four"), seed=1), resolve_env("connect_four"),
                       {}, ["random"], 20, seed=0)["random"].to_json()
    assert c4["win"] == 1.0
    ttt = resolve_env("tictactoe")
    perfect = resolve_agent("perfect", ttt, seed=3)
    per = evaluate_game(perfect, ttt, {}, ["random", "greedy", "perfect"], 40, seed=0)
    result = {k: r.to_json() for k, r in per.items()}
    assert all(r["loss"] == 0 for r in result.values())
    assert result["perfect"]["draw"] == 1.0
    assert result["random"]["win"] >= 0.8


def test_bad_alphabeta_argument_is_a_clear_error() -> None:
    from rlft.core.errors import PluginError

    with pytest.raises(PluginError, match="alphabeta"):
        resolve_agent("alphabeta:zero", resolve_env("connect_four"))


@pytest.mark.parametrize("name", GAMES)
def test_alphabeta_cache_changes_no_move(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The searched-position cache returns what the search would: the same games, move for move and draw for draw,
    with the cache on (warm from the first half of the games) and off; and it is really used."""
    from rlft.envs import board_agents

    plugin = resolve_env(name)

    def games(cache_size: int) -> list[list[int]]:
        monkeypatch.setattr(board_agents.AlphaBetaAgent, "cache_size", cache_size)
        board_agents._CHOICES.clear()
        players = [resolve_agent("alphabeta:2,0.2", plugin, seed=1), resolve_agent("alphabeta:3", plugin, seed=2)]
        played = []
        for g in range(12):
            env = plugin.make()
            env.reset(seed=g)
            moves = []
            for agent in env.agent_iter():
                obs, _, term, trunc, _ = env.last()
                move = None if term or trunc else players[(env.agents.index(agent) + g) % 2].act(
                    obs["observation"], obs["action_mask"])
                env.step(move)
                moves.append(move)
            played.append(moves)
        return played

    cached = games(10_000)
    assert len(board_agents._CHOICES) > 0
    assert cached == games(0)
    assert len(board_agents._CHOICES) == 0


def test_connect_four_winning_moves_bitboard_matches_playing_every_move(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bitboard shortcut for "which moves win now" gives what playing each legal move and asking the rules does,
    for the player to move and for the opponent (the blocks), and alpha-beta chooses the same moves with or without
    it."""
    from rlft.envs import board_agents
    from rlft.envs.connect_four import RULES, AlphaBeta

    rng = np.random.default_rng(0)
    states = []
    for _ in range(100):
        state = (0, 0, -1)
        while RULES.legal(state) and not RULES.last_won(state):
            states.append(state)
            state = RULES.play(state, int(rng.choice(RULES.legal(state))))
    for state in states:
        for seen in (state, (state[1], state[0], -1)):
            played = {m for m in RULES.legal(seen) if RULES.last_won(RULES.play(seen, m))}
            assert RULES.winning_moves(seen) == played
    assert sum(bool(RULES.winning_moves(s)) for s in states) > 100  # the positions have wins to find

    sample = states[::10]
    monkeypatch.setattr(board_agents.AlphaBetaAgent, "cache_size", 0)
    fast = [AlphaBeta("3").choices(s, RULES.legal(s)) for s in sample]
    monkeypatch.delattr(type(RULES), "winning_moves")
    assert [AlphaBeta("3").choices(s, RULES.legal(s)) for s in sample] == fast


def test_text_board_shows_both_players() -> None:
    from rlft.envs.connect_four import render_text

    obs, _ = c4_obs(me=[(5, 3)], opp=[(4, 3)])
    text = render_text(obs, mover=0)
    assert "X" in text and "O" in text and "0 1 2 3 4 5 6" in text
