"""Self-play on the env plugin's game state: the part of the PettingZoo AEC API self-play uses, over a fast core.

An env plugin that offers a game state for search (``extras["game_state"]``, :mod:`rlft.envs.game_state`) has its
rules in a small immutable core (Connect Four: a bitboard), checked move for move against the PettingZoo env on
random games (``tests/test_game_state.py``). :class:`CoreGame` plays self-play games on that core instead of the
PettingZoo env: the same agents, spaces, observations (the planes of each seat), action masks, rewards (+1 / -1 to the
winner / loser of the final move, 0 for a draw) and terminations, without the env's per-move Python bookkeeping
(PettingZoo's Connect Four scans the whole board for a winner after every move). The PettingZoo env is kept for
its spaces and closed with the game.

``finetune.self_play.game_core: false`` plays on the PettingZoo env instead (needed when env kwargs change the rules:
the core knows only the standard game).

Example::

    game = CoreGame(ConnectFourState, connect_four_v3.env())
    game.reset(); game.step(3); game.observe("player_1")["action_mask"]
"""

from __future__ import annotations

from typing import Any

import numpy as np


class CoreGame:
    """A two-player AEC game over a game-state class (see the module docstring)."""

    def __init__(self, state_cls: Any, env: Any) -> None:
        self.state_cls = state_cls
        self.env = env
        self.possible_agents: list[str] = list(env.possible_agents)
        self.agents = list(self.possible_agents)
        self.state = state_cls.initial()
        self.agent_selection = self.possible_agents[0]
        self.rewards: dict[str, float] = dict.fromkeys(self.possible_agents, 0.0)
        self.terminations: dict[str, bool] = dict.fromkeys(self.possible_agents, False)
        self.truncations: dict[str, bool] = dict.fromkeys(self.possible_agents, False)

    def observation_space(self, agent: str) -> Any:
        return self.env.observation_space(agent)

    def action_space(self, agent: str) -> Any:
        return self.env.action_space(agent)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.state = self.state_cls.initial()
        self.agent_selection = self.possible_agents[0]
        self.rewards = dict.fromkeys(self.possible_agents, 0.0)
        self.terminations = dict.fromkeys(self.possible_agents, False)
        self.truncations = dict.fromkeys(self.possible_agents, False)

    def step(self, action: int | None) -> None:
        if self.terminations[self.agent_selection]:
            return  # PettingZoo's "dead step" of a finished game
        mover = self.agent_selection
        other = self.possible_agents[1 - self.possible_agents.index(mover)]
        self.state = self.state.play(int(action))  # type: ignore[arg-type]
        result = self.state.terminal_value()
        if result is not None:
            if result == -1.0:  # the move just played won
                self.rewards[mover], self.rewards[other] = 1.0, -1.0
            self.terminations = dict.fromkeys(self.possible_agents, True)
        self.agent_selection = other

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        planes = self.state.observation()
        to_move = agent == self.agent_selection
        if not to_move:
            planes = np.ascontiguousarray(planes[..., ::-1])
        mask = self.state.legal_mask().astype(np.int8) if to_move else np.zeros(self.state_cls.n_actions, np.int8)
        return {"observation": planes, "action_mask": mask}

    def close(self) -> None:
        self.env.close()
