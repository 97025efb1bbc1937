"""The search cores (``rlft.envs.game_state``) play exactly the PettingZoo games: on 1,000 random games each, every
position's observation, legal moves, end of game and result agree with the real env, move for move."""

from __future__ import annotations

import numpy as np
import pytest

from rlft.core.envs import resolve_env
from rlft.core.plugins import import_object


@pytest.mark.parametrize("env_name", ["connect_four", "tictactoe"])
def test_core_agrees_with_pettingzoo_on_random_games(env_name: str) -> None:
    plugin = resolve_env(env_name)
    cls = import_object(plugin.extras["game_state"], "game state")
    env = plugin.make()
    rng = np.random.default_rng(0)
    games, moves, draws = 1000, 0, 0
    for game in range(games):
        env.reset(seed=game)
        state = cls.initial()
        while True:
            seat = env.agent_selection
            obs, _, terminated, truncated, _ = env.last()
            if terminated or truncated:
                # the seat to move now lost (the other seat's last move won) or drew; the core says the same
                other = env.agents[1 - env.agents.index(seat)]
                assert state.terminal_value() == env.rewards[seat] == -env.rewards[other]
                assert not state.legal_mask().any()
                draws += state.terminal_value() == 0
                break
            assert state.terminal_value() is None
            np.testing.assert_array_equal(state.observation(), obs["observation"])
            np.testing.assert_array_equal(state.legal_mask(), obs["action_mask"].astype(bool))
            seen = cls.from_observation(obs["observation"])
            assert seen.key() == state.key() and seen.terminal_value() is None
            action = int(rng.choice(np.flatnonzero(obs["action_mask"])))
            env.step(action)
            state = state.play(action)
            moves += 1
        # the position read back from the final planes knows the game is over too
        final = env.observe(env.agent_selection)["observation"]
        assert cls.from_observation(final).terminal_value() == state.terminal_value() or state.terminal_value() == 0
    assert moves > games * 5 and 0 < draws < games  # real games: wins and draws both happen


def test_illegal_move_is_refused() -> None:
    from rlft.envs.game_state import ConnectFourState

    state = ConnectFourState.initial()
    for _ in range(6):
        state = state.play(0) if state.terminal_value() is None else state
    with pytest.raises(ValueError, match="column 0"):
        state.play(0)


def test_connect_four_threats_are_the_cells_that_complete_a_four() -> None:
    """open_fours (the exact solver's move ordering) agrees with brute force: a cell is a threat exactly when putting
    the player's stone there makes four in a line; ordered_moves lists every legal move once, best-threat first."""
    from rlft.envs.game_state import _CELLS, ConnectFourState, four_in_a_row, open_fours

    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(200):
        state = ConnectFourState.initial()
        for _ in range(int(rng.integers(4, 30))):
            if state.terminal_value() is not None:
                break
            state = state.play(int(rng.choice(np.flatnonzero(state.legal_mask()))))
        for bits in (state.mine, state.occupied ^ state.mine):
            if four_in_a_row(bits):  # the game is over: every cell "completes" a four
                continue
            want = sum(bit for bit, _, _ in _CELLS if not state.occupied & bit and four_in_a_row(bits | bit))
            assert open_fours(bits, state.occupied) == want
            checked += want != 0
        if state.terminal_value() is None:
            moves = state.ordered_moves()
            assert sorted(a for a, _ in moves) == np.flatnonzero(state.legal_mask()).tolist()
            assert all(child.key() == state.play(a).key() for a, child in moves)
            counts = [open_fours(c.occupied ^ c.mine, c.occupied).bit_count() for _, c in moves]
            assert counts == sorted(counts, reverse=True)
    assert checked > 50  # positions with threats were seen, not only quiet ones
