"""The LLM game agent and the env reward: illegal or unparsable generations are handled as documented and counted;
the agent never plays an illegal move; ``rlft.load_agent`` on an LLM folder trained on a game gives a game agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rlft.bridges.game_text.agent import GameLLMAgent
from rlft.bridges.game_text.reward import game_outcome
from rlft.bridges.game_text.view import text_view
from rlft.core.envs import resolve_env
from rlft.llm.agent import LLMAgent
from rlft.llm.config import BuildConfig
from rlft.policy.games.arena import evaluate_game


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained char-level LM over tic-tac-toe text, saved as an agent folder of the tictactoe env."""
    from rlft.llm.model import build_tiny_model, save_model, train_tokenizer

    torch.set_num_threads(1)
    tok = train_tokenizer(["012|345|678 X>4", "XO2|3X5|678 O>8", "abc"], "char")
    model = build_tiny_model(tok, BuildConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                                             intermediate_size=64, max_length=32), seed=0)
    out = tmp_path_factory.mktemp("gllm") / "agent"
    save_model(model, tok, out, {"stage": "test", "env": "tictactoe"})
    return out


def _agent(folder: Path, **kw: Any) -> GameLLMAgent:
    import rlft

    agent = rlft.load_agent(folder, device="cpu")
    assert isinstance(agent, GameLLMAgent)
    for k, v in kw.items():
        setattr(agent, k, v)
    return agent


@pytest.mark.parametrize("policy", ["constrained", "generate"])
def test_untrained_llm_never_plays_illegally_and_counts_what_it_would_have_played(untrained: Path,
                                                                                   policy: str) -> None:
    agent = _agent(untrained, policy=policy, audit=True)
    result = evaluate_game(agent, resolve_env("tictactoe"), {}, ["random"], 20, seed=0, deterministic=False)
    r = result["random"].to_json()
    assert r["games"] == 20  # an illegal move would have raised IllegalActionError
    stats = agent.move_stats()
    assert stats["moves"] >= 20 * 3
    bad = stats["unparsable"] + stats["illegal"]
    assert stats["free_legal"] + bad == stats["moves"]  # every free generation is classified once
    assert bad > 0  # an untrained model writes junk: counted, never played
    if policy == "generate":
        assert stats["fallbacks"] + stats["reasked"] == bad
    else:
        assert stats["fallbacks"] == 0


def test_text_prompts_still_complete_and_constrained_choice_follows_the_model(untrained: Path) -> None:
    agent = _agent(untrained)
    assert isinstance(agent.act("012|345|678 X>"), str)  # text in, text out (the plain LLMAgent behaviour)
    obs = np.zeros((3, 3, 2), dtype=np.int8)
    mask = np.zeros(9, dtype=np.int8)
    mask[[2, 6]] = 1
    scores = agent.move_logprobs(agent.view.prompt(obs), [2, 6])
    assert agent.act(obs, mask) == [2, 6][int(torch.argmax(scores))]
    assert {agent.act(obs, mask, deterministic=False) for _ in range(40)} == {2, 6}


class _Scripted:
    """An 'LLM' answering from a fixed list (to drive the agent through each documented case)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.model = torch.nn.Linear(1, 1)

    def complete(self, prompts: list[str], deterministic: bool = True, temperature: float = 1.0,
                 max_new_tokens: int | None = None) -> list[str]:
        return [self.answers.pop(0)]


def test_generate_policy_reasks_then_falls_back(untrained: Path) -> None:
    base = _agent(untrained)
    obs = np.zeros((3, 3, 2), dtype=np.int8)
    mask = np.ones(9, dtype=np.int8)
    mask[4] = 0
    llm: Any = _Scripted(["4", "junk", "7"])  # illegal, then a re-ask that fails to parse, then a legal re-ask
    agent = GameLLMAgent(llm, base.view, policy="generate", retries=2)
    agent.choose = lambda prompt, legal, deterministic=True: -1  # type: ignore[method-assign]
    assert agent.act(obs, mask) == 7
    assert agent.stats["illegal"] == 1 and agent.stats["reasked"] == 1 and agent.stats["fallbacks"] == 0
    agent.llm = _Scripted(["?", "x", "y"])
    agent.choose = lambda prompt, legal, deterministic=True: legal[0]  # type: ignore[method-assign]
    assert agent.act(obs, mask) == 0  # nothing usable: the constrained choice
    assert agent.stats["unparsable"] == 1 and agent.stats["fallbacks"] == 1 and agent.stats["moves"] == 2


def test_env_reward_plays_the_move_in_the_real_game_and_counts_bad_moves() -> None:
    logged: dict[str, float] = {}
    # X to move with X on 0 and 4, O on 2 and 5: 8 wins on the spot, 6 and 3 let perfect O force a result.
    prompt = "X1O|3XO|678 X>"
    rewards = game_outcome([prompt] * 6, ["8", " 8", "4", "Z", "1", "9"], env="tictactoe", opponents=["perfect"],
                           rollout="perfect", log_metric=lambda k, v: logged.__setitem__(k, v))
    assert rewards[:2] == [1.0, 1.0]
    assert rewards[2] == -2.0 and rewards[3] == -2.0 and rewards[5] == -2.0  # occupied, unparsable, off the board
    assert rewards[4] == -1.0  # X on 1 leaves 8 open: perfect O completes 2-5-8 at once, a loss every time
    assert logged["illegal_rate"] == pytest.approx(1 / 6) and logged["unparsable_rate"] == pytest.approx(2 / 6)
    assert logged["win_rate"] >= 2 / 6
    # O to move must block at 8; anything else loses against perfect play.
    block = game_outcome(["X1O|3X5|678 O>"] * 2, ["8", "1"], env="tictactoe", opponents=["perfect"],
                         rollout="perfect")
    assert block == [0.0, -1.0]


def test_env_reward_without_play_out_scores_only_the_move() -> None:
    r = game_outcome(["X1O|3XO|678 X>"] * 2, ["8", "6"], env="tictactoe", play_out=False)
    assert r == [1.0, 0.0]


def test_text_view_of_loaded_agent_matches_the_env_plugin(untrained: Path) -> None:
    agent = _agent(untrained)
    assert type(agent.view) is type(text_view(resolve_env("tictactoe")))
    assert isinstance(agent.llm, LLMAgent) and agent.env == "tictactoe"


def test_played_positions_are_the_positions_the_model_met_in_its_own_games(untrained: Path) -> None:
    from rlft.bridges.game_text.reward import played_positions

    agent = _agent(untrained)
    view = text_view(resolve_env("tictactoe"))
    prompts = played_positions(agent.model, agent.tokenizer, env="tictactoe", opponents=["random", "perfect"],
                               games=6, seed=0)
    assert len(prompts) == len(set(prompts)) > 6
    empty = view.prompt(np.zeros((3, 3, 2), dtype=np.int8), np.ones(9, dtype=bool))
    assert empty in prompts  # the model sat first in half of the games
    for prompt in prompts:  # each is a position of the model's seat, to move, legal and replayable in the real env
        obs = view.observation(prompt)
        assert view.prompt(obs) == prompt
        assert obs.sum() < 9 and len(view.replay(obs)) < 9


def test_play_games_without_a_game_reward_is_a_clear_error() -> None:
    from types import SimpleNamespace

    from rlft.core.errors import ConfigError
    from rlft.llm.config import RewardSpec, RLConfig
    from rlft.llm.stages.rl import with_played_positions

    cfg = RLConfig(rewards=[RewardSpec(fn="exact_match")], play_games=4)
    ctx: Any = SimpleNamespace(config=cfg, name="rl", seed=0)
    with pytest.raises(ConfigError, match="game_outcome"):
        with_played_positions(ctx, None, None, None)


def test_played_positions_alternate_seats_and_greedy_pairs_of_games_reproducibly(untrained: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    """Games alternate the model's seat; games 0-1, 4-5, ... are greedy (as evaluation plays), 2-3, 6-7 sampled;
    the opponent always plays its deterministic mode; every game has its own seed, the same on every call."""
    import rlft.bridges.game_text.reward as reward_module
    from rlft.bridges.game_text.reward import played_positions

    calls: list[tuple[str, bool, bool, int]] = []
    real = reward_module.play_game

    def spy(game: Any, agents: dict[str, Any], *, seed: int, deterministic: dict[str, bool], **kw: Any) -> Any:
        (me,) = [seat for seat, a in agents.items() if isinstance(a, GameLLMAgent)]
        (them,) = [seat for seat in agents if seat != me]
        calls.append((me, deterministic[me], deterministic[them], seed))
        return real(game, agents, seed=seed, deterministic=deterministic, **kw)

    monkeypatch.setattr(reward_module, "play_game", spy)
    agent = _agent(untrained)
    first = played_positions(agent.model, agent.tokenizer, opponents=["random", "perfect"], games=6, seed=0)
    seats = [c[0] for c in calls]
    assert seats == ["player_1", "player_2"] * 6
    assert [c[1] for c in calls] == [True, True, False, False, True, True] * 2 and all(c[2] for c in calls)
    assert len({c[3] for c in calls}) == 12  # a seed of its own for each game
    seeds = [c[3] for c in calls]
    calls.clear()
    assert played_positions(agent.model, agent.tokenizer, opponents=["random", "perfect"], games=6, seed=0) == first
    assert [c[3] for c in calls] == seeds
    assert {p[-2] for p in first} == {"X", "O"}  # positions of both seats to move: the model sat first and second
    calls.clear()
    played_positions(agent.model, agent.tokenizer, games=2, seed=0)  # no opponents given: a random player
    assert len(calls) == 2
