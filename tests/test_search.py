"""PUCT search (``mcts:``): it finds forced wins from the rules alone, it reads the value head with the right sign
for the player to move in both seats, and the spec works wherever agent specs do."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlft.core.errors import ConfigError
from rlft.envs.game_state import ConnectFourState, TicTacToeState
from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.agents import PolicyAgent
from rlft.policy.search import MCTSAgent, SearchSettings, _Node, parse_spec


def network(value_weights: np.ndarray | None = None, shape: tuple[int, ...] = (6, 7, 2), n: int = 7) -> PolicyAgent:
    """A linear actor-critic with a uniform prior and value = value_weights . observation (zero by default)."""
    obs_space = gym.spaces.Box(0, 1, shape, dtype=np.int8)
    policy = build_policy(PolicySpec(arch="mlp", net_arch=[]), obs_space, gym.spaces.Discrete(n), masked=True)
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        if value_weights is not None:
            policy.value_net.weight.copy_(torch.as_tensor(value_weights.reshape(1, -1), dtype=torch.float32))
    return PolicyAgent(policy)


def play(cls: type, moves: list[int]) -> ConnectFourState | TicTacToeState:
    state = cls.initial()
    for m in moves:
        state = state.play(m)
    return state


def best(agent: MCTSAgent, state: ConnectFourState | TicTacToeState) -> int:
    return agent.act(state.observation(), state.legal_mask().astype(np.int8), deterministic=True)


@pytest.mark.parametrize("fpu", [-1.0, 0.0])
@pytest.mark.parametrize("seat", [0, 1])
def test_finds_a_forced_win_from_the_rules(seat: int, fpu: float) -> None:
    """Connect Four, bottom row: the mover has pieces in columns 2 and 3 with 1 and 4 open (and 0 and 5 too); the
    open three after 1 or 4 cannot be blocked at both ends: a win in three plies that a flat network cannot see."""
    prefix = [0] if seat == 1 else []  # second seat: the first player's piece in column 0 leaves only 4 winning
    state = play(ConnectFourState, [*prefix, 2, 6, 3, 6])
    agent = MCTSAgent(network(), ConnectFourState, SearchSettings(sims=400, fpu=fpu))
    assert best(agent, state) in ((1, 4) if seat == 0 else (4,))
    # and an immediate win is taken (the open three 2-3-4 after the opponent played elsewhere)
    state = play(ConnectFourState, [*prefix, 2, 6, 3, 6, 4, 0])
    assert best(agent, state) in (1, 5)


def test_tictactoe_fork_is_found_and_the_forced_loss_is_blocked() -> None:
    agent = MCTSAgent(network(shape=(3, 3, 2), n=9), TicTacToeState, SearchSettings(sims=400))
    # X: 0 and 8, O: 4 and 1: O threatens 1-4-7, so X must block at 7
    x_to_move = play(TicTacToeState, [0, 4, 8, 1])  # O blocked nothing useful; X must block 7 (O threatens 1-4-7)
    assert best(agent, x_to_move) == 7
    fork = play(TicTacToeState, [0, 1, 4, 8])  # X: 0, 4; O: 1, 8. X to move: 6 threatens 2-4-6 and 0-3-6 (fork)
    assert best(agent, fork) in (3, 6)  # the two forks (the perfect player's winning moves)
    assert TicTacToeState.initial().terminal_value() is None


@pytest.mark.parametrize("seat", [0, 1])
def test_value_head_is_read_for_the_player_to_move(seat: int) -> None:
    """A value head that says "a piece of the player to move at the bottom of column 0 is good for it": seen from
    the position after a move, the piece is the *opponent's*, so the child's value is negative for its mover and
    the edge's value positive for the root's mover. Read with the wrong sign, the search would avoid column 0."""
    w = np.zeros((6, 7, 2))
    w[5, 0, 0], w[5, 0, 1] = 0.9, -0.9
    agent = MCTSAgent(network(w), ConnectFourState, SearchSettings(sims=64))
    state = play(ConnectFourState, [6] if seat == 1 else [])
    assert best(agent, state) == 0
    assert agent.last_search_policy is not None and agent.last_search_policy.argmax() == 0
    assert abs(float(agent.last_search_policy.sum()) - 1.0) < 1e-6
    # the root value (the critic target `value_target: search`) is for the player who moved: positive here
    assert agent.last_search_value is not None and 0.5 < agent.last_search_value <= 1.0
    # the opposite head (the piece at the bottom of column 0 is bad for whoever owns it) is avoided
    bad = MCTSAgent(network(-w), ConnectFourState, SearchSettings(sims=64))
    assert best(bad, state) != 0
    assert bad.last_search_value is not None and bad.last_search_value < agent.last_search_value


def test_first_play_urgency_is_what_an_unvisited_move_counts_as() -> None:
    """One move visited once, valued -0.3. Counted as a draw (fpu < 0), the unvisited moves beat it; counted as the
    position's own value minus the reduction (fpu=0.1, a position valued -0.8), the search stays on it."""
    node = _Node(ConnectFourState.initial())
    node.prior = np.full(7, 1 / 7)
    node.visits[3], node.value_sum[3] = 1, -0.3
    assert node.select(c_puct=1.0) != 3
    agent = MCTSAgent(network(), ConnectFourState, SearchSettings(fpu=0.1))
    node.fpu_q = agent._fpu(-0.8)
    assert node.fpu_q == pytest.approx(-0.9)
    assert node.select(c_puct=1.0) == 3
    assert MCTSAgent(network(), ConnectFourState, SearchSettings(fpu=-1))._fpu(-0.8) == 0.0  # a draw
    assert MCTSAgent(network(), ConnectFourState)._fpu(-0.8) == pytest.approx(-0.8)  # the default: its own value


def test_training_games_are_noisy_and_evaluation_is_deterministic() -> None:
    agent = MCTSAgent(network(), ConnectFourState, SearchSettings(sims=32, seed=1))
    state = ConnectFourState.initial()
    greedy = {best(agent, state) for _ in range(5)}
    sampled = {agent.act(state.observation(), state.legal_mask(), deterministic=False) for _ in range(20)}
    assert len(greedy) == 1 and len(sampled) > 1


def test_spec_parsing_errors_name_the_option() -> None:
    assert parse_spec("mcts:runs/x,sims=50,c_puct=2")[1].sims == 50
    with pytest.raises(ConfigError, match="simz"):
        parse_spec("mcts:runs/x,simz=5")
    with pytest.raises(ConfigError, match="names no agent"):
        parse_spec("mcts:")
    assert parse_spec("mcts:runs/x,solve=18,fpu=0.2")[1].solve == 18
    with pytest.raises(ConfigError, match="solve >= 0"):
        parse_spec("mcts:runs/x,solve=-1")


def biased_network(favourite: int, shape: tuple[int, ...] = (3, 3, 2), n: int = 9) -> PolicyAgent:
    """A network whose prior puts nearly all its mass on one move, whatever the position."""
    agent = network(shape=shape, n=n)
    with torch.no_grad():
        agent.policy.action_net.bias[favourite] = 8.0
    return agent


def test_solver_never_spends_a_simulation_on_a_move_that_loses_at_once() -> None:
    """O threatens 1-4-7: every X move but 7 lets O win next ply. Even with a prior that wants square 2, the
    solver marks the others lost when the root is expanded, and every simulation goes to the block."""
    agent = MCTSAgent(biased_network(2), TicTacToeState, SearchSettings(sims=50))
    state = play(TicTacToeState, [0, 4, 8, 1])
    assert best(agent, state) == 7
    assert agent.last_search_policy is not None
    np.testing.assert_array_equal(np.flatnonzero(agent.last_search_policy), [7])


def test_solver_plays_a_win_in_one_without_searching() -> None:
    """X has 0 and 4 with 8 open: the win is played with a one-hot search policy, whatever the prior says, and the
    network is asked nothing."""
    agent = MCTSAgent(biased_network(2), TicTacToeState, SearchSettings(sims=50))
    calls: list[int] = []
    evaluate = agent.evaluate
    agent.evaluate = lambda states: calls.append(len(states)) or evaluate(states)  # type: ignore[method-assign]
    state = play(TicTacToeState, [0, 1, 4, 2])  # X: 0, 4; O: 1, 2 (O threatens nothing X cannot ignore)
    assert best(agent, state) == 8 and calls == []
    assert agent.last_search_policy is not None and agent.last_search_policy[8] == 1.0
    assert agent.last_search_value == 1.0  # a proven win for the player to move


def test_solver_proves_a_double_threat_lost_and_stops() -> None:
    """O threatens 0-4-8 and 2-4-6 and X cannot win: every move loses, proven at the root, so the search stops
    after the root's one evaluation instead of spending its simulations."""
    agent = MCTSAgent(network(shape=(3, 3, 2), n=9), TicTacToeState, SearchSettings(sims=200))
    calls: list[int] = []
    evaluate = agent.evaluate
    agent.evaluate = lambda states: calls.append(len(states)) or evaluate(states)  # type: ignore[method-assign]
    state = play(TicTacToeState, [1, 4, 3, 8, 5, 2])  # X: 1, 3, 5; O: 4, 8, 2 -> O threatens 0 and 6
    assert state.terminal_value() is None and not agent.search(state, noise=False).any()
    assert calls == [1]


def test_solver_carries_a_forced_win_up_the_tree() -> None:
    """Connect Four: the open three after column 1 or 4 is a win in three plies; the solver proves it, so the root's
    policy ends one-hot on a winning move, where plain PUCT only leans towards it."""
    agent = MCTSAgent(network(), ConnectFourState, SearchSettings(sims=400))
    state = play(ConnectFourState, [2, 6, 3, 6])
    visits = agent.search(state, noise=False)
    assert visits.sum() == 1.0 and int(visits.argmax()) in (1, 4)


def test_tree_reuse_searches_on_from_the_reply_and_tops_up_to_sims() -> None:
    """With reuse=1 the position after the agent's move and the reply is found in the last tree: its visits are
    kept, the search only tops them up to ``sims`` (fewer network calls), and a position the tree does not hold
    (a new game) gets a fresh tree."""
    def counted(reuse: int) -> tuple[MCTSAgent, list[int]]:
        agent = MCTSAgent(network(), ConnectFourState, SearchSettings(sims=200, reuse=reuse))
        calls: list[int] = []
        evaluate = agent.evaluate
        agent.evaluate = lambda states: calls.append(len(states)) or evaluate(states)  # type: ignore[method-assign]
        return agent, calls

    start = ConnectFourState.initial()
    for reuse in (0, 1):
        agent, calls = counted(reuse)
        first = best(agent, start)
        reply = start.play(first).play(3)
        assert reuse == 0 or agent._subtree(reply).visits.sum() > 0  # type: ignore[union-attr]
        before = len(calls)
        agent.search(reply, noise=False)
        root = agent._tree
        if reuse:
            assert root is not None and root.visits.sum() == 200  # topped up, not 200 more
            reused_calls = len(calls) - before
        else:
            assert root is None
            fresh_calls = len(calls) - before
    assert reused_calls < fresh_calls
    # the reused search still finds the win in one, and a new game's first position starts a fresh tree
    agent, _ = counted(1)
    best(agent, play(ConnectFourState, [2, 6, 3, 6]))
    threat = play(ConnectFourState, [2, 6, 3, 6, 4, 0])
    assert best(agent, threat) in (1, 5)
    fresh = ConnectFourState.initial()
    assert agent._subtree(fresh) is None
    assert agent.search(fresh, noise=False).sum() == 200
    # one agent in both seats (self-play recording): the next position is one ply down, searched on too
    assert agent._subtree(fresh.play(3)).visits.sum() > 0  # type: ignore[union-attr]


def test_sym_averages_the_mirror_views_so_evaluation_is_mirror_equivariant() -> None:
    """sym=1: a network that is not mirror-symmetric (random weights) gives a position and its mirror image
    different priors; averaged over the two views, the mirror position's prior is the position's prior mirrored
    and the values agree. The prior also stays a distribution over legal moves only."""
    torch.manual_seed(0)
    obs_space = gym.spaces.Box(0, 1, (6, 7, 2), dtype=np.int8)
    policy = build_policy(PolicySpec(arch="mlp", net_arch=[16]), obs_space, gym.spaces.Discrete(7), masked=True)
    agent = PolicyAgent(policy)
    moves = [0, 0, 0, 0, 1, 0, 0, 2]  # column 0 full: an illegal move, on one side only
    state, mirror = play(ConnectFourState, moves), play(ConnectFourState, [6 - m for m in moves])
    plain = MCTSAgent(agent, ConnectFourState, SearchSettings(sym=0))
    both = MCTSAgent(agent, ConnectFourState, SearchSettings(sym=1))
    (p, pm), (v, vm) = plain.evaluate([state, mirror])
    assert not np.allclose(p, pm[::-1], atol=1e-3)  # the network alone is not equivariant
    (s, sm), (w, wm) = both.evaluate([state, mirror])
    np.testing.assert_allclose(s, sm[::-1], atol=1e-6)
    assert w == pytest.approx(wm, abs=1e-6) and w == pytest.approx((v + vm) / 2, abs=1e-6)
    assert s[0] == 0 and sm[6] == 0 and s.sum() == pytest.approx(1.0)
    with pytest.raises(Exception, match="symmetries"):
        MCTSAgent(agent, type("NoSymmetries", (), {}), SearchSettings(sym=1))
