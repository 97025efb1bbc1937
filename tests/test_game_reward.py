"""The game-outcome reward (``rlft.bridges.game_text.reward``), checked on tic-tac-toe positions whose values are
worked out by hand below, so each number the reward returns is compared with the game's own answer.

``P`` = ``X1O|3XO|678 X>``: X on 0 and 4, O on 2 and 5, X to move. 8 wins on the spot (0-4-8). Every other legal
move (1, 3, 6, 7) leaves O's 2-5-8 open, so perfect O wins at once. Against a random O, X on 1 loses only when O
happens to take 8 (one of O's four moves); otherwise X, played by ``perfect``, wins at 8 next.
``Q`` = ``X1O|3X5|678 O>``: the same board before O's 5, O to move: 8 blocks and perfect play draws; 1 loses.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rlft.bridges.game_text.reward import game_outcome, play_move
from rlft.bridges.game_text.view import text_view
from rlft.core.envs import resolve_env

P = "X1O|3XO|678 X>"
Q = "X1O|3X5|678 O>"
EMPTY = text_view(resolve_env("tictactoe")).prompt(np.zeros((3, 3, 2), dtype=np.int8), np.ones(9, dtype=bool))


def _step(n: int) -> SimpleNamespace:
    return SimpleNamespace(global_step=n)


def test_play_move_names_each_kind_and_the_movers_return() -> None:
    assert play_move(P, None) == ("unparsable", 0.0)
    for bad in (0, 2, 9, -1):  # occupied, occupied, off the board, negative (would index the mask from the end)
        assert play_move(P, bad) == ("illegal", 0.0)
    assert play_move(EMPTY, 0)[0] in ("win", "draw", "loss")  # the first square is a legal move
    assert play_move(P, 8, opponent="perfect") == ("win", 1.0)
    assert play_move(P, 1, opponent="perfect", rollout="perfect") == ("loss", -1.0)
    # The second seat to move: the replayed history is split between the seats the other way round.
    assert play_move(Q, 8, opponent="perfect", rollout="perfect") == ("draw", 0.0)
    assert play_move(Q, 1, opponent="perfect", rollout="perfect") == ("loss", -1.0)


def test_rollout_agent_plays_the_llms_later_moves_and_defaults_to_the_opponent() -> None:
    seeds = range(12)
    # Centre first, then perfect play on both sides: always a draw (and the same when rollout is the perfect opponent).
    assert {play_move(EMPTY, 4, opponent="perfect", rollout="perfect", seed=s)[0] for s in seeds} == {"draw"}
    assert {play_move(EMPTY, 4, opponent="perfect", seed=s)[0] for s in seeds} == {"draw"}
    # Random later moves against perfect play lose some games and never win one.
    kinds = [play_move(EMPTY, 4, opponent="perfect", rollout="random", seed=s)[0] for s in seeds]
    assert "loss" in kinds and "win" not in kinds


def test_outcome_values_are_the_configured_ones() -> None:
    rewards = game_outcome([P, P, P, P, Q], ["8", "1", "0", "Z", "8"], opponents=["perfect"], rollout="perfect",
                           win=2.0, loss=-3.0, illegal=-5.0)
    assert rewards == [2.0, -3.0, -5.0, -5.0, 0.0]  # win, loss, illegal, unparsable (scored as illegal), draw


def test_reward_is_the_mean_over_opponents_and_rollouts_and_every_game_is_counted() -> None:
    logged: dict[str, float] = {}
    rewards = game_outcome([P] * 4, ["8", "1", "0", "Z"], opponents=["random", "perfect"], rollout="perfect",
                           rollouts=4, log_metric=logged.__setitem__)
    # "8": 8 wins. "1": 4 losses against perfect, k losses and 4 - k wins against random, so its reward is -k/4.
    # "0" and "Z" are one game each. 18 games in all.
    assert rewards[1] is not None
    k = -4 * rewards[1]
    assert rewards[0] == 1.0 and rewards[2:] == [-2.0, -2.0]
    assert k == int(k) and 0 <= k <= 4
    assert logged["win_rate"] == pytest.approx((8 + 4 - k) / 18)
    assert logged["loss_rate"] == pytest.approx((4 + k) / 18)
    assert logged["illegal_rate"] == pytest.approx(1 / 18) and logged["unparsable_rate"] == pytest.approx(1 / 18)
    assert logged["draw_rate"] == 0.0


def test_one_rollout_scores_one_game_per_opponent() -> None:
    # X on 1 against random O: a single play-out is a win or a loss, never a mean of several.
    seen = {game_outcome([P], ["1"], opponents=["random"], rollout="perfect", trainer_state=_step(s))[0]
            for s in range(16)}
    assert seen == {1.0, -1.0}


def test_completions_of_one_prompt_share_random_numbers_and_steps_and_seeds_change_them() -> None:
    def batch(step: int, seed: int = 0) -> list[float | None]:
        return game_outcome([P] * 3, ["1", "1", "1"], opponents=["random"], rollout="random", rollouts=3,
                            trainer_state=_step(step), seed=seed)

    by_step = [batch(s) for s in range(8)]
    assert all(len(set(r)) == 1 for r in by_step)  # equal moves, equal rewards (common random numbers)
    assert len({r[0] for r in by_step}) > 1  # the step enters the random numbers
    assert by_step == [batch(s) for s in range(8)]  # and only the step and seed do: a second call repeats the first
    assert [batch(s, seed=1) for s in range(8)] != by_step


def test_the_scripted_prefix_hands_over_with_the_callers_mode() -> None:
    from rlft.bridges.game_text.reward import ScriptedThen

    asked: list[bool] = []

    class Then:
        def act(self, observation: object, action_mask: object = None, deterministic: bool = True) -> int:
            asked.append(deterministic)
            return 7

    agent = ScriptedThen([3, 4], Then())
    assert [agent.act(None), agent.act(None), agent.act(None, deterministic=False), agent.act(None)] == [3, 4, 7, 7]
    assert asked == [False, True]


def test_each_env_keeps_its_own_game_and_view() -> None:
    c4 = text_view(resolve_env("connect_four"))
    empty = c4.prompt(np.zeros((6, 7, 2), dtype=np.int8), np.ones(7, dtype=bool))
    assert game_outcome([P], ["8"], env="tictactoe", play_out=False) == [1.0]
    assert game_outcome([empty, empty], [c4.move_text(3), c4.move_text(7)], env="connect_four",
                        play_out=False) == [0.0, -2.0]  # the centre column is legal, an eighth column is not
    assert game_outcome([P], ["8"], env="tictactoe", play_out=False) == [1.0]


def test_the_rollout_setting_reaches_every_play_out() -> None:
    kwargs = {"opponents": ["perfect"], "rollouts": 12}
    assert game_outcome([EMPTY], ["4"], rollout="perfect", **kwargs) == [0.0]  # perfect play on both sides: draws
    (random_later,) = game_outcome([EMPTY], ["4"], rollout="random", **kwargs)
    assert random_later is not None and random_later < 0  # random later moves lose some of the 12 games


def test_the_opponent_is_seeded_when_the_rollout_agent_is_another_one() -> None:
    def rewards() -> list[float | None]:
        return [game_outcome([P], ["1"], opponents=["random"], rollout="perfect:0.5", rollouts=4,
                             trainer_state=_step(s))[0] for s in range(8)]

    first = rewards()
    assert rewards() == first and len(set(first)) > 1
