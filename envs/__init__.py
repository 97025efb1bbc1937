"""Built-in environment plugins (installed as ``rlft.envs``).

Each entry maps a short name to an :class:`~rlft.core.envs.EnvPlugin`: a factory returning a Gymnasium env or a
PettingZoo env, plus the scripted experts/opponents that come with it. Third-party packages add envs through the
entry-point group ``rlft.envs`` (the entry point may be an ``EnvPlugin`` or a plain factory), and any env works by
spec: a Gymnasium id, ``pkg.module:make_env`` or ``path/to/file.py:make_env``.
"""

from __future__ import annotations

from rlft.core.envs import EnvPlugin

BUILTIN_ENVS: dict[str, EnvPlugin] = {
    "cartpole": EnvPlugin(
        name="cartpole",
        factory="rlft.envs.cartpole:make_env",
        description="CartPole-v1 (Gymnasium) with a scripted PD-controller expert.",
        agents={"expert": "rlft.envs.cartpole:CartPoleExpert"},
        gym_id="CartPole-v1",
    ),
    "connect_four": EnvPlugin(
        name="connect_four",
        factory="rlft.envs.connect_four:make_env",
        description="Connect Four (PettingZoo classic, two players, action masks).",
        agents={"greedy": "rlft.envs.connect_four:Greedy", "alphabeta": "rlft.envs.connect_four:AlphaBeta"},
        extras={"render_text": "rlft.envs.connect_four:render_text",
                "text_view": "rlft.envs.text_views:ConnectFourText",
                "game_state": "rlft.envs.game_state:ConnectFourState"},
    ),
    "tictactoe": EnvPlugin(
        name="tictactoe",
        factory="rlft.envs.tictactoe:make_env",
        description="Tic-tac-toe (PettingZoo classic, two players, action masks) with a perfect minimax player.",
        agents={"greedy": "rlft.envs.tictactoe:Greedy", "alphabeta": "rlft.envs.tictactoe:AlphaBeta",
                "perfect": "rlft.envs.tictactoe:Perfect"},
        extras={"render_text": "rlft.envs.tictactoe:render_text",
                "text_view": "rlft.envs.text_views:TicTacToeText",
                "game_state": "rlft.envs.game_state:TicTacToeState"},
    ),
}
"""Built-in env plugins by name (`random` is available for every env through rlft.agents)."""

# Scripted experts for plain Gymnasium ids, so `--env CartPole-v1 --agent expert` works too.
GYM_ID_AGENTS: dict[str, dict[str, str]] = {"CartPole-v1": {"expert": "rlft.envs.cartpole:CartPoleExpert"}}
