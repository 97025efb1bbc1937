"""Every registry has one shape: built-ins + an entry-point group + ``pkg.module:Name``. Here an installed package
(a dist-info folder on ``sys.path``) offers an agent, a dataset, a reward function and an env, and each is found by
its plain name through the same resolver."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlft.core.envs import resolve_env
from rlft.core.errors import PluginError
from rlft.encoder.data import read_columns
from rlft.llm.config import LLMDataConfig, RewardSpec
from rlft.llm.data import load_examples
from rlft.llm.rewards import resolve_reward
from rlft.policy.agents import resolve_agent

PACKAGE = '''
import gymnasium as gym

class FirstLegal:
    def __init__(self, offset="0"):
        self.offset = int(offset)
    def act(self, observation, action_mask=None, deterministic=True):
        legal = [i for i, ok in enumerate(action_mask) if ok]
        return legal[min(self.offset, len(legal) - 1)]

def sums():
    return {"question": ["1+1=", "2+3="], "answer": ["2", "5"], "text": ["a b", "c d"], "label": ["x", "y"]}

def always_one(prompts, completions, **columns):
    return [1.0] * len(completions)

def make_env():
    return gym.make("CartPole-v1")
'''
ENTRY_POINTS = """[rlft.agents]
first_legal = rlft_test_plugins:FirstLegal
[rlft.datasets]
sums = rlft_test_plugins:sums
broken = rlft_test_plugins:always_one
[rlft.rewards]
always_one = rlft_test_plugins:always_one
[rlft.envs]
plugin_cartpole = rlft_test_plugins:make_env
"""


@pytest.fixture()
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    (tmp_path / "rlft_test_plugins.py").write_text(PACKAGE)
    info = tmp_path / "rlft_test_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rlft-test-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("rlft_test_plugins", None)


def test_an_installed_package_adds_agents_datasets_rewards_and_envs(installed: None) -> None:
    import numpy as np

    ttt = resolve_env("tictactoe")
    agent = resolve_agent("first_legal:1", ttt)
    assert agent.act(np.zeros((3, 3, 2)), action_mask=np.array([0, 1, 1, 0, 0, 0, 0, 0, 1])) == 2  # 2nd legal move

    rows = load_examples(LLMDataConfig(source="sums", prompt_column="question", completion_column="answer"))
    assert rows["prompt"] == ["1+1=", "2+3="] and rows["completion"] == ["2", "5"]
    inputs, labels = read_columns("sums", "text", "label")
    assert inputs == ["a b", "c d"] and labels == ["x", "y"]

    reward = resolve_reward(RewardSpec(fn="always_one"))
    assert reward(["p"], ["c"]) == [1.0]
    assert resolve_env("plugin_cartpole").make().spec.id == "CartPole-v1"


def test_a_broken_dataset_plugin_is_a_clear_error(installed: None) -> None:
    with pytest.raises(PluginError, match="dataset plugin 'broken'"):
        read_columns("broken", "text", "label")
    with pytest.raises(Exception, match="neither a file or folder"):
        read_columns("no_such_dataset", "text", "label")
