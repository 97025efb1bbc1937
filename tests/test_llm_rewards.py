"""Reward plugins: resolution (built-in, file, module), bound kwargs, weighting, and the contract checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from llm_helpers import tiny_llm  # noqa: F401  (session fixture)

from conftest import PLUGINS
from rlft.core.errors import PluginError
from rlft.llm.config import RewardSpec
from rlft.llm.rewards import (
    CheckedReward,
    RewardError,
    build_rewards,
    combined_reward,
    exact_match,
    length_penalty,
    load_reward_model,
    regex_match,
    resolve_reward,
)

PROMPTS = ["1+2=", "3+4=", "5+5="]
COMPLETIONS = ["3", " 7 ", "11"]
ANSWERS = ["3", "7", "10"]


def test_builtins_score_by_hand() -> None:
    assert exact_match(PROMPTS, COMPLETIONS, answer=ANSWERS) == [1.0, 1.0, 0.0]
    assert exact_match(PROMPTS, COMPLETIONS, column="target", target=["3", "0", "11"]) == [1.0, 0.0, 1.0]
    assert regex_match(PROMPTS, COMPLETIONS, pattern=r"\d") == [1.0, 1.0, 0.0]
    assert regex_match(PROMPTS, COMPLETIONS, pattern=r"1", full=False) == [0.0, 0.0, 1.0]
    assert length_penalty(PROMPTS, COMPLETIONS, max_chars=10) == [-0.1, -0.3, -0.2]


def test_builtin_defaults() -> None:
    """What a config gets when it names the reward without kwargs: any non-empty completion matches, and the
    length penalty is per 100 characters."""
    assert regex_match(PROMPTS, ["3", "  ", "", "a b"]) == [1.0, 0.0, 0.0, 1.0]
    assert length_penalty(PROMPTS, ["x" * 100, "x" * 25, ""]) == [-1.0, -0.25, 0.0]


def test_exact_match_without_reference_column_names_it() -> None:
    with pytest.raises(PluginError, match="exact_match needs a reference column"):
        exact_match(PROMPTS, COMPLETIONS, other=[1, 2, 3])


def test_resolution_builtin_file_module_and_unknown() -> None:
    assert resolve_reward(RewardSpec(fn="exact_match")).__name__ == "exact_match"
    from_file = resolve_reward(RewardSpec(fn=f"{PLUGINS / 'llm_rewards.py'}:starts_with_digit"))
    assert from_file(PROMPTS, ["4", "x", "1"]) == [1.0, 0.0, 1.0]
    assert from_file.__name__ == "starts_with_digit"
    from_module = resolve_reward(RewardSpec(fn="rlft.llm.rewards:regex_match", kwargs={"pattern": "3"}))
    assert from_module(PROMPTS, COMPLETIONS) == [1.0, 0.0, 0.0]  # kwargs are bound
    with pytest.raises(PluginError, match="Unknown reward function 'exakt_match'.*exact_match"):
        resolve_reward(RewardSpec(fn="exakt_match"))
    with pytest.raises(PluginError, match="does not exist"):
        resolve_reward(RewardSpec(fn="missing.py:fn"))


def test_weighting_sums_terms_and_names_duplicates() -> None:
    specs = [RewardSpec(fn="exact_match", weight=1.0), RewardSpec(fn="length_penalty", weight=0.5,
                                                                   kwargs={"max_chars": 10}),
             RewardSpec(fn="length_penalty", weight=0.0)]
    funcs, weights, tokenizers = build_rewards(specs)
    assert weights == [1.0, 0.5, 0.0] and tokenizers == [None, None, None]
    assert [f.__name__ for f in funcs] == ["exact_match", "length_penalty", "length_penalty_2"]
    total = combined_reward(funcs, weights, PROMPTS, COMPLETIONS, answer=ANSWERS)
    assert total == pytest.approx([1 - 0.05, 1 - 0.15, 0 - 0.1])


def test_none_counts_as_zero_in_the_sum() -> None:
    fn = CheckedReward(lambda p, c, **_: [None, 1.0, None], "f", "f")
    assert combined_reward([fn], [2.0], PROMPTS, COMPLETIONS) == [0.0, 2.0, 0.0]


@pytest.mark.parametrize(("name", "message"), [
    ("raises", r"'.*llm_rewards.py:raises' raised ValueError: boom"),
    ("wrong_count", r"'.*llm_rewards.py:wrong_count' returned 4 values for 3 completions"),
    ("nan_reward", r"'.*llm_rewards.py:nan_reward' returned nan for completion 0"),
])
def test_contract_violations_name_the_function(name: str, message: str) -> None:
    fn = resolve_reward(RewardSpec(fn=f"{PLUGINS / 'llm_rewards.py'}:{name}"))
    with pytest.raises(RewardError, match=message):
        fn(PROMPTS, COMPLETIONS)


def test_non_numbers_are_rejected() -> None:
    fn = CheckedReward(lambda p, c, **_: ["high"] * len(c), "mine.py:f", "f")
    with pytest.raises(RewardError, match=r"'mine.py:f' returned 'high'"):
        fn(PROMPTS, COMPLETIONS)
    assert CheckedReward(lambda p, c, **_: [1] * len(c), "g", "g")(PROMPTS, COMPLETIONS) == [1.0, 1.0, 1.0]


def test_reward_spec_needs_fn_or_model() -> None:
    from rlft.core.errors import ConfigError
    from rlft.pipeline.config import pipeline_from_dict

    with pytest.raises(ConfigError, match="exactly one of `fn`"):
        pipeline_from_dict({"rl": {"rewards": [{"weight": 1.0}]}})
    with pytest.raises(ConfigError, match="divisible by rl.num_generations"):
        pipeline_from_dict({"rl": {"batch_size": 10, "num_generations": 4}})


def test_a_causal_lm_folder_loads_as_a_one_output_reward_model(tiny_llm: Path, tmp_path: Path) -> None:  # noqa: F811
    import shutil

    from transformers import AutoTokenizer

    model, tok = load_reward_model(str(tiny_llm))
    assert model.config.num_labels == 1 and tok.padding_side == "right"  # TRL scores the last non-pad token
    assert tok.pad_token_id is not None and model.config.pad_token_id == tok.pad_token_id
    batch = tok(["1+2=3", "40+4=44"], return_tensors="pt", padding=True)
    assert model(**batch).logits.shape == (2, 1)  # one score per sequence
    # A tokenizer without a pad token pads with its end-of-sequence token.
    no_pad = tmp_path / "no_pad"
    shutil.copytree(tiny_llm, no_pad)
    plain = AutoTokenizer.from_pretrained(no_pad)
    plain.pad_token = None
    plain.save_pretrained(no_pad)
    assert AutoTokenizer.from_pretrained(no_pad).pad_token is None
    model, tok = load_reward_model(str(no_pad))
    assert tok.pad_token == tok.eos_token is not None and model.config.pad_token_id == tok.eos_token_id


def test_a_missing_reward_model_is_a_plugin_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="reward model"):
        load_reward_model(str(tmp_path / "nowhere"))


def test_reward_models_are_left_to_the_trainer_in_the_combined_reward() -> None:
    import torch

    model = torch.nn.Linear(1, 1)  # stands where a reward model sits in TRL's reward_funcs: callable, has forward
    total = combined_reward([model, exact_match], [1.0, 2.0], PROMPTS, COMPLETIONS, answer=ANSWERS)
    assert total == [2.0, 2.0, 0.0]  # the function after the model still counts; the model is not called


def test_an_unknown_reward_function_is_a_plugin_error_naming_the_kind() -> None:
    from rlft.llm.rewards import reward_function

    with pytest.raises(PluginError, match=r"\breward function\b"):
        reward_function(RewardSpec(fn="no_such_reward"))
    assert reward_function(RewardSpec(fn="exact_match")) is exact_match


def test_a_reward_from_an_installed_package_resolves_by_its_entry_point_name(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from rlft.llm.rewards import reward_function

    site = tmp_path / "site"
    shutil.copytree(Path(__file__).parent / "stage_pkg", site, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(site))
    fn = resolve_reward(RewardSpec(fn="shouting"))
    assert fn.__name__ == "shouting" and fn(PROMPTS, ["YES", "no", "OK"]) == [1.0, 0.0, 1.0]
    assert reward_function(RewardSpec(fn="shouting")).__module__ == "rlft_test_stage_pkg"


def test_conversational_completions_and_a_completion_column_score_like_plain_text() -> None:
    chat = [[{"role": "assistant", "content": c}] for c in COMPLETIONS]
    assert exact_match(PROMPTS, chat, answer=ANSWERS) == [1.0, 1.0, 0.0]
    two_parts = [[{"role": "assistant", "content": "1"}, {"role": "assistant", "content": "1"}]]
    assert exact_match(PROMPTS[:1], two_parts, answer=["11"]) == [1.0]  # the parts are joined without a separator
    assert exact_match(PROMPTS[:1], [[{"role": "assistant"}, "not a message"]], answer=[""]) == [1.0]  # no content
    assert exact_match(PROMPTS, COMPLETIONS, completion=["3", "0", "11"]) == [1.0, 0.0, 1.0]  # TRL's column name


def test_names_of_plugin_functions_and_of_three_terms_of_one_function() -> None:
    assert resolve_reward(RewardSpec(fn="rlft.llm.rewards:regex_match")).__name__ == "regex_match"
    funcs, _, _ = build_rewards([RewardSpec(fn="length_penalty")] * 3)
    assert [f.__name__ for f in funcs] == ["length_penalty", "length_penalty_2", "length_penalty_3"]


def test_a_reward_model_term_comes_with_its_tokenizer(tiny_llm: Path) -> None:  # noqa: F811
    funcs, weights, tokenizers = build_rewards([RewardSpec(model=str(tiny_llm), weight=0.5),
                                                RewardSpec(fn="exact_match")])
    assert hasattr(funcs[0], "forward") and funcs[0].config.num_labels == 1 and funcs[1].__name__ == "exact_match"
    assert tokenizers[0] is not None and tokenizers[0].padding_side == "right" and tokenizers[1] is None
    assert weights == [0.5, 1.0]


def test_numeric_closeness_orders_wrong_answers_by_distance() -> None:
    from rlft.llm.rewards import numeric_closeness

    scores = numeric_closeness(PROMPTS * 2, ["3", " 8", "x", "-7 apples", "1.5", "10"], answer=ANSWERS * 2,
                               scale=10.0)
    assert scores[0] == 1.0 and scores[5] == 1.0  # exact
    assert scores[1] == pytest.approx(math.exp(-0.1))  # 8 vs 7: one off
    assert scores[2] == 0.0  # no number
    assert scores[3] == pytest.approx(math.exp(-1.0))  # -7 vs 3: the first number, sign included
    assert scores[4] == pytest.approx(math.exp(-0.55))  # 1.5 vs 7
    assert numeric_closeness(["q"], ["12"], target=["10"], column="target", scale=1.0) == [pytest.approx(math.exp(-2))]
    with pytest.raises(PluginError, match="numeric_closeness needs a reference column"):
        numeric_closeness(PROMPTS, COMPLETIONS)
    assert resolve_reward(RewardSpec(fn="numeric_closeness"))(["q"], ["4"], answer=["4"]) == [1.0]
    assert numeric_closeness(["q"], ["8"], answer=["7"]) == [pytest.approx(math.exp(-0.1))]  # default scale 10
    assert numeric_closeness(["q"], ["5"], completion=["7"]) == [pytest.approx(math.exp(-0.2))]  # TRL's column
