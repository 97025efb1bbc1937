"""Search on top of a learned policy: AlphaZero-style PUCT (``mcts:RUN[,sims=N,c_puct=C,temp=T]``).

The search reads the position from the observation (through the env plugin's game state, ``extras["game_state"]``,
see :mod:`rlft.envs.game_state`), and grows a tree whose **prior** at a node is the agent's masked policy there and
whose **leaf value** is the agent's value head, for the player to move at the leaf (the observation planes are that
player's, so the critic's estimate is that player's expected result). A move is chosen with PUCT::

    a* = argmax_a  Q(s, a) + c_puct * P(s, a) * sqrt(N(s)) / (1 + N(s, a))

where ``Q(s, a)`` is the mean value of the simulations through ``a`` for the player to move at ``s``. Finished games
are scored by the rules (a loss for the player to move after a winning move, 0 for a draw), never by the network.
Leaves are evaluated in batches (``batch`` leaves per forward pass, kept apart by a virtual loss). With
``deterministic=False`` (training games) Dirichlet noise is mixed into the root prior and the move is sampled from
the visit counts at temperature ``temp``; with ``deterministic=True`` (evaluation) there is no noise and the most
visited move is played. After every move, :attr:`MCTSAgent.last_search_policy` holds the root's visit distribution
(what recording stores as the soft imitation target).

Example::

    agent = rlft.load_agent("mcts:runs/c4,sims=200")
    action = agent.act(obs["observation"], action_mask=obs["action_mask"])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from rlft.core import plugins
from rlft.core.agent import check_mask, load_agent
from rlft.core.envs import resolve_env
from rlft.core.errors import ConfigError, PluginError
from rlft.policies.networks import masked_logits
from rlft.policy.endgame import EndgameSolver, empty_cells


@dataclass
class SearchSettings:
    """The options of an ``mcts:`` spec (``mcts:RUN,sims=200,c_puct=1.5``)."""

    sims: int = 200
    """Simulations (leaf evaluations or finished games reached) per move."""
    c_puct: float = 1.0
    """Exploration constant of PUCT: larger trusts the prior longer (on the Connect Four positions set, 100
    simulations: 0.35 -> 0.646 optimal, 0.7 -> 0.680, 1.0 -> 0.669, 1.5 -> 0.657, 3.0 -> 0.617)."""
    temp: float = 1.0
    """Temperature of the visit counts a move is sampled from in training games (deterministic play: argmax)."""
    temp_plies: int = 10
    """Training games sample at temperature ``temp`` only in the first this many plies of a game, then play the most
    visited move (the root noise stays)."""
    batch: int = 8
    """Leaves evaluated per forward pass."""
    dirichlet_alpha: float = 0.5
    """Concentration of the Dirichlet noise mixed into the root prior in training games."""
    noise_frac: float = 0.25
    """Weight of that noise (0: none)."""
    discount: float = 0.995
    """Per-ply discount of backed-up values (the value head's gamma per learner move is two plies), so of two
    winning lines the shorter one scores higher, and of two lost ones the longer."""
    seed: int = 0
    """Seed of the noise and of sampling."""
    fpu: float = 0.0
    """First-play urgency: the value an unvisited move counts as in PUCT. 0 or more: the position's own network
    value minus this much (Leela Zero's and KataGo's choice: where every move looks bad the search stays on its
    best lines instead of widening); negative: 0, a draw (AlphaZero's). On 389 solver-labelled positions kept apart
    from the benchmark set, 200 simulations: -1 -> 0.758 optimal, 0 -> 0.779, 0.2 -> 0.771, 0.5 -> 0.763."""
    solve: int = 0
    """Exact endgame (``rlft/policy/endgame.py``): when at most this many cells of the board are empty, solve the
    position to the end by alpha-beta over the rules (at most ``solve_nodes`` positions) before searching, and let
    PUCT choose only among the moves of the best exact value (the result, and how soon: the fastest win, the
    longest-delayed loss). 0: off, pure PUCT. Cells are read from the observation planes (one stone per occupied cell,
    as in Connect Four and tic-tac-toe)."""
    solve_nodes: int = 50_000
    """Node budget of one endgame solve (about 10 us a position for Connect Four: 0.5 s); past it the search goes
    on without the exact values."""
    sym: int = 0
    """1: evaluate every position on the network together with its symmetric images (the game state's
    ``symmetries()``: Connect Four's mirror image) and average the priors (mapped back to the position's moves) and
    the values: the ensemble of views AlphaZero used at play time, one forward pass of twice the batch. 0: the
    position as it is."""
    reuse: int = 0
    """1: keep the tree between moves: when the position to search was reached in the last move's tree (one ply
    down in self-play, two after the opponent's reply), search on from that subtree, topping its visits up to
    ``sims`` (fewer network calls per move; the same search otherwise). 0: a fresh tree every move."""


def parse_spec(spec: str) -> tuple[str, SearchSettings]:
    """``mcts:RUN,k=v,...`` -> (RUN, settings); a ConfigError names a bad option."""
    _, _, rest = spec.partition(":")
    run, *options = rest.split(",")
    if not run:
        raise ConfigError(f"The agent spec '{spec}' names no agent to search with: write mcts:RUN (a run folder, "
                          "checkpoint or .zip), e.g. mcts:runs/c4,sims=200.")
    types = {f.name: f.type for f in fields(SearchSettings)}
    values: dict[str, Any] = {}
    for option in options:
        key, eq, value = option.partition("=")
        if not eq or key not in types:
            raise ConfigError(f"The agent spec '{spec}' has the option '{option}', which mcts does not know. Options: "
                              + ", ".join(f"{k}=..." for k in types) + " (e.g. mcts:runs/c4,sims=200,c_puct=1.5).")
        try:
            values[key] = int(value) if types[key] in (int, "int") else float(value)
        except ValueError:
            raise ConfigError(f"The agent spec '{spec}': {key} must be a number, got '{value}'.") from None
    settings = SearchSettings(**values)
    if settings.sims < 1 or settings.batch < 1 or settings.c_puct <= 0 or settings.temp < 0 or \
            not 0 < settings.discount <= 1 or settings.solve < 0 or settings.solve_nodes < 1:
        raise ConfigError(f"The agent spec '{spec}': sims, batch and solve_nodes must be >= 1, c_puct > 0, temp >= 0, "
                          "solve >= 0 and 0 < discount <= 1.")
    return run, settings


class _Node:
    """A position in the tree: its state, prior and per-move visit counts and value sums (for the player to move).

    ``terminal`` is the position's value when the rules settle it, for the player to move: -1 (the last move won),
    0 (a draw), +1 (the player to move wins with its next move, ``win`` names that move), or the result the search has
    proven from the children (MCTS-solver: a move to a lost position wins; a position whose every move hands the
    opponent an immediate win is lost)."""

    __slots__ = ("state", "legal", "prior", "visits", "value_sum", "children", "terminal", "win", "losing", "fpu_q")

    def __init__(self, state: Any) -> None:
        self.state = state
        self.terminal: float | None = state.terminal_value()
        self.legal: np.ndarray = state.legal_mask()
        self.win: int | None = None
        if self.terminal is None:
            self.win = next((int(a) for a in np.flatnonzero(self.legal) if state.play(int(a)).terminal_value() == -1),
                            None)
            if self.win is not None:
                self.terminal = 1.0
        self.prior: np.ndarray | None = None  # set when the network has evaluated the position
        self.visits = np.zeros(len(self.legal), dtype=np.float64)
        self.value_sum = np.zeros(len(self.legal), dtype=np.float64)
        self.children: dict[int, _Node] = {}
        self.losing = np.zeros(len(self.legal), dtype=bool)
        """Moves proven to lose (the opponent then wins); PUCT skips them while another move is left."""
        self.fpu_q = 0.0
        """The value unvisited moves count as (SearchSettings.fpu)."""

    def select(self, c_puct: float) -> int:
        assert self.prior is not None
        total = self.visits.sum()
        q = np.divide(self.value_sum, self.visits, out=np.full_like(self.value_sum, self.fpu_q), where=self.visits > 0)
        score = q + c_puct * self.prior * math.sqrt(total + 1.0) / (1.0 + self.visits)
        allowed = self.legal & ~self.losing
        score[~(allowed if allowed.any() else self.legal)] = -np.inf
        return int(np.argmax(score))

    def child(self, action: int) -> _Node:
        node = self.children.get(action)
        if node is None:
            node = self.children[action] = _Node(self.state.play(action))
        return node

    def expand(self) -> bool:
        """Create every child and mark the moves that hand the opponent an immediate win; True when that proves
        this position lost (every move does)."""
        for a in np.flatnonzero(self.legal):
            if self.child(int(a)).terminal == 1.0:
                self.losing[a] = True
        if self.terminal is None and self.losing[self.legal].all():
            self.terminal = -1.0
            return True
        return False


def logits_and_values(policy: Any, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Action logits and value estimates of an SB3 actor-critic for a batch of observations, in one forward pass."""
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        latent_pi = policy.mlp_extractor.forward_actor(features[0])
        latent_vf = policy.mlp_extractor.forward_critic(features[1])
    return policy.action_net(latent_pi), policy.value_net(latent_vf).flatten()


class MCTSAgent:
    """PUCT search over a policy agent's prior and value (see the module docstring)."""

    def __init__(self, agent: Any, state_cls: Any, settings: SearchSettings | None = None) -> None:
        policy = getattr(agent, "policy", None)
        if policy is None or not hasattr(policy, "value_net"):
            raise PluginError("mcts needs an actor-critic policy agent (a run, checkpoint or .zip of rlft / SB3) to "
                              f"search with; got {type(agent).__name__}.")
        self.agent = agent
        self.policy = policy
        self.state_cls = state_cls
        self.settings = settings or SearchSettings()
        self.rng = np.random.default_rng(self.settings.seed)
        self.meta = getattr(agent, "meta", {})
        self.last_search_policy: np.ndarray | None = None
        """Visit distribution at the root of the last move (None before the first move)."""
        self._tree: _Node | None = None  # the last move's root (settings.reuse)
        self._solver = EndgameSolver(self.settings.solve_nodes) if self.settings.solve > 0 else None
        symmetries = getattr(state_cls, "symmetries", None)
        if self.settings.sym and symmetries is None:
            raise PluginError(f"mcts sym=1 needs the game state to offer symmetries() ({state_cls.__name__} has none); "
                              "drop sym=1.")
        self._symmetries = symmetries() if self.settings.sym and symmetries is not None else []
        self.last_search_value: float | None = None
        """The root's value after the last move's search, for the player who moved (in [-1, 1]: the visit-weighted
        mean of its edges, or the proven result)."""

    def evaluate(self, states: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """(priors (B, n_actions), values (B,)) of the network for positions, each for its player to move (averaged
        over the position's symmetric images with ``sym=1``)."""
        planes = np.stack([s.observation() for s in states])
        masks = np.stack([s.legal_mask() for s in states])
        views = [(planes, masks, None)] + [(sym.observations(planes), masks[:, np.argsort(sym.actions)], sym.actions)
                                           for sym in self._symmetries]
        obs = torch.as_tensor(np.concatenate([v[0] for v in views]), device=self.policy.device)
        with torch.no_grad():
            logits, values = logits_and_values(self.policy, obs)
            priors = torch.softmax(masked_logits(logits, np.concatenate([v[1] for v in views])), dim=-1)
        p = priors.cpu().numpy().astype(np.float64).reshape(len(views), len(states), -1)
        v = values.clamp(-1.0, 1.0).cpu().numpy().astype(np.float64).reshape(len(views), len(states))
        # a view's prior of its move actions[a] is the position's prior of move a
        prior = sum(p[k] if actions is None else p[k][:, actions] for k, (_, _, actions) in enumerate(views))
        return prior / len(views), v.mean(axis=0)

    def search(self, state: Any, noise: bool) -> np.ndarray:
        """Run the simulations from ``state``; the root's visit counts (all on the winning move once the search has
        proven one)."""
        s = self.settings
        root = (self._subtree(state) if s.reuse else None) or _Node(state)
        exact: np.ndarray | None = None
        best_moves: np.ndarray | None = None  # the moves of the best exact value, when the solver has them
        if root.win is None and root.terminal is None:
            if root.prior is None:
                priors, values = self.evaluate([state])
                root.prior = priors[0]
                root.fpu_q = self._fpu(float(values[0]))
                root.expand()
            exact = self._solve(state)
            if exact is not None:  # only the moves of the best exact value are searched (and can be played)
                best_moves = exact == np.nanmax(exact)
                root.losing |= root.legal & ~best_moves
            if noise and s.noise_frac > 0:
                legal = np.flatnonzero(root.legal)
                eta = self.rng.dirichlet([s.dirichlet_alpha] * len(legal))
                root.prior = root.prior.copy()
                root.prior[legal] = (1 - s.noise_frac) * root.prior[legal] + s.noise_frac * eta
        # a reused tree may hold visits to moves the solver has just ruled out: only the others count as done
        done = int(root.visits.sum() if best_moves is None else root.visits[best_moves].sum())
        self._tree = root if s.reuse else None
        while done < s.sims and root.terminal is None:
            pending: list[tuple[list[tuple[_Node, int]], _Node]] = []
            for _ in range(min(s.batch, s.sims - done)):
                path, leaf = self._descend(root)
                done += 1
                if leaf.terminal is not None:
                    self._backup(path, leaf.terminal)
                    self._prove(path)
                    if root.terminal is not None:
                        break
                    continue
                if leaf.prior is None:
                    leaf.prior = np.zeros(len(leaf.legal))  # queued: later descents of this batch stop here too
                pending.append((path, leaf))
            if not pending:
                continue
            unique = list({id(leaf): leaf for _, leaf in pending}.values())
            priors, values = self.evaluate([leaf.state for leaf in unique])
            value_of = {}
            for leaf, p, v in zip(unique, priors, values):
                leaf.prior, leaf.fpu_q = p, self._fpu(float(v))
                value_of[id(leaf)] = -1.0 if leaf.expand() else float(v)
            for path, leaf in pending:
                self._backup(path, value_of[id(leaf)])
                if leaf.terminal is not None:
                    self._prove(path)
        total = root.visits.sum()
        self.last_search_value = (float(root.terminal) if root.terminal is not None
                                  else float(np.sign(np.nanmax(exact))) if exact is not None
                                  else float(root.value_sum.sum() / total) if total > 0 else None)
        if root.terminal == 1.0 and root.win is not None:
            won = np.zeros(len(root.legal), dtype=np.float64)
            won[root.win] = 1.0
            return won
        if best_moves is not None:  # a reused tree may hold visits to the moves the solver ruled out
            visits = np.where(best_moves, root.visits, 0.0)
            return visits if visits.sum() > 0 else best_moves.astype(np.float64)
        return root.visits

    def _solve(self, state: Any) -> np.ndarray | None:
        """The exact value of every move (``SearchSettings.solve``), or None: solving is off, the board is not yet
        empty enough, or the node budget ran out."""
        if self._solver is None:
            return None
        if empty_cells(state) > self.settings.solve:
            return None
        return self._solver.move_values(state)

    def _fpu(self, value: float) -> float:
        """What unvisited moves of a position whose network value is ``value`` count as."""
        return 0.0 if self.settings.fpu < 0 else value - self.settings.fpu

    def _subtree(self, state: Any) -> _Node | None:
        """The node of ``state`` one ply below the last move's root (the same agent playing both seats, as in
        self-play recording) or two (the agent's move, then the reply), when the tree holds it and the network has
        evaluated it. A node's statistics are for its player to move, so either is the search from ``state``."""
        if self._tree is None:
            return None
        seen = state.observation()
        children = list(self._tree.children.values())
        for node in children + [g for c in children for g in c.children.values()]:
            if node.prior is not None and np.array_equal(node.state.observation(), seen):
                return node
        return None

    @staticmethod
    def _prove(path: list[tuple[_Node, int]]) -> None:
        """MCTS-solver: carry a result the rules settled at the end of ``path`` up the tree, as far as it proves the
        positions above it won (a move reaches a lost position) or lost (every move reaches a won one)."""
        for node, a in reversed(path):
            child = node.children[a]
            if child.terminal == -1.0 and node.terminal is None:
                node.terminal, node.win = 1.0, a
            elif child.terminal == 1.0:
                node.losing[a] = True
                if node.terminal is not None or not node.losing[node.legal].all():
                    return
                node.terminal = -1.0
            else:
                return

    def _descend(self, root: _Node) -> tuple[list[tuple[_Node, int]], _Node]:
        """Follow PUCT from the root to an unevaluated or finished position, adding a virtual loss on the way (a
        visit that counts as a loss until the simulation's value is backed up), so a batch spreads over the tree."""
        path: list[tuple[_Node, int]] = []
        node = root
        while node.terminal is None and node.prior is not None and node.prior.any():
            a = node.select(self.settings.c_puct)
            path.append((node, a))
            node.visits[a] += 1
            node.value_sum[a] -= 1.0
            node = node.child(a)
        return path, node

    def _backup(self, path: list[tuple[_Node, int]], value: float) -> None:
        """Turn the path's virtual loss into the simulation's result: ``value`` is for the player to move at the
        leaf, so each edge, whose value is for the player who moved there, gets it sign-flipped (and discounted)
        once per ply."""
        for node, a in reversed(path):
            value = -value * self.settings.discount
            node.value_sum[a] += value + 1.0

    def act(self, observation: Any, action_mask: Any = None, deterministic: bool = True) -> int:
        mask = check_mask(action_mask)
        state = self.state_cls.from_observation(np.asarray(observation))
        visits = self.search(state, noise=not deterministic)
        if mask is not None:
            visits = np.where(mask, visits, 0.0)
        legal = mask if mask is not None else state.legal_mask()
        if visits.sum() == 0:
            visits = legal.astype(np.float64)
        self.last_search_policy = (visits / visits.sum()).astype(np.float32)
        ply = int(np.asarray(observation).sum())  # pieces on the board
        if deterministic or self.settings.temp == 0 or ply >= self.settings.temp_plies:
            return int(np.argmax(visits))
        weights = visits ** (1.0 / self.settings.temp)
        return int(self.rng.choice(len(weights), p=weights / weights.sum()))


def game_state_class(env_spec: str | None, plugin: Any = None) -> Any:
    """The game-state class an env plugin offers for search; a PluginError when it offers none."""
    plugin = plugin or (resolve_env(env_spec) if env_spec else None)
    spec = getattr(plugin, "extras", {}).get("game_state") if plugin is not None else None
    if spec is None:
        name = getattr(plugin, "name", env_spec)
        raise PluginError(f"mcts needs the env to offer a game state for search (extras['game_state'] of its plugin, "
                          f"see rlft.envs.game_state); the env '{name}' offers none. Built-in: connect_four, "
                          "tictactoe.")
    return plugins.import_object(spec, "game state") if isinstance(spec, str) else spec


def load_mcts_agent(spec: str, *, env_plugin: Any = None, seed: int | None = None, device: str = "auto",
                    trust_pickle: bool = False, env: str | None = None) -> MCTSAgent:
    """The agent of an ``mcts:RUN,...`` spec (RUN: a run folder, checkpoint or SB3 ``.zip``)."""
    run, settings = parse_spec(spec)
    if seed is not None:
        settings.seed = int(seed)
    agent = load_agent(run, device=device, trust_pickle=trust_pickle, env=env)
    if env_plugin is not None or env:
        return MCTSAgent(agent, game_state_class(env, env_plugin), settings)
    # the env the agent's own metadata names: a `module:Name` spec there needs --trust-code, like any file-named code
    with plugins.code_named_by(f"the agent metadata of '{run}'"):
        return MCTSAgent(agent, game_state_class(getattr(agent, "meta", {}).get("env")), settings)
