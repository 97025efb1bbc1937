"""rlft's PPO update is SB3's: with ``kl_coef == 0`` it leaves exactly the parameters (and logs) SB3's ``PPO`` and
sb3-contrib's ``MaskablePPO`` leave, early stopping on ``target_kl`` included; with ``kl_coef > 0`` it does not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import DummyVecEnv

from rlft.policy.ppo import RlftMaskablePPO, RlftPPO, _minibatches, _ReferenceCache

N_ENVS, N_STEPS, BATCH, EPOCHS, ROLLOUTS = 2, 64, 32, 3, 4


class MaskedChoice(gym.Env):
    """Four numbers in, pick one; a random subset of the actions (never all) is invalid at each step."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self._obs = np.zeros(4, np.float32)
        self._mask = np.ones(4, bool)
        self._t = 0

    def _draw(self) -> np.ndarray:
        self._obs = self.np_random.uniform(-1.0, 1.0, 4).astype(np.float32)
        self._mask = self.np_random.random(4) < 0.6
        self._mask[self.np_random.integers(4)] = True
        return self._obs.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._draw(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(self._obs[int(action)]) if self._mask[int(action)] else -1.0
        self._t += 1
        return self._draw(), reward, False, self._t >= 16, {}

    def action_masks(self) -> np.ndarray:
        return self._mask.copy()


# name -> (SB3 class, rlft class, env factory, extra hyper-parameters, target_kl that triggers early stopping)
CASES: dict[str, tuple[type, type, Callable[[], gym.Env], dict[str, Any], float]] = {
    "cartpole": (PPO, RlftPPO, lambda: gym.make("CartPole-v1"), {"learning_rate": 3e-3}, 0.002),
    # Pendulum: clip ranges given as schedules of the progress remaining (SB3 accepts a number or a schedule).
    "pendulum": (PPO, RlftPPO, lambda: gym.make("Pendulum-v1"),
                 {"learning_rate": 3e-3, "clip_range": lambda p: 0.1 + 0.1 * p, "clip_range_vf": lambda p: 0.1 + p},
                 0.002),
    "masked": (MaskablePPO, RlftMaskablePPO, MaskedChoice, {"learning_rate": 3e-3}, 0.002),
}


class _TrainLogs(KVWriter):
    """Keeps the ``train/`` entries of every logger dump."""

    def __init__(self) -> None:
        self.dumps: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        train = {k: v for k, v in key_values.items() if k.startswith("train/")}
        if train:
            self.dumps.append(train)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _learn(case: str, rlft: bool, *, kl_coef: float = 0.0, reference: Any = None, seed: int = 0,
           **overrides: Any) -> tuple[BaseAlgorithm, list[dict[str, Any]]]:
    """``learn()`` ROLLOUTS rollouts; the model and the ``train/`` logs of each of its updates."""
    sb3_cls, rlft_cls, make_env, hp, _ = CASES[case]
    kwargs = {"n_steps": N_STEPS, "batch_size": BATCH, "n_epochs": EPOCHS, "seed": seed, "device": "cpu",
              "policy_kwargs": {"net_arch": [32, 32]}, **hp, **overrides}
    env = DummyVecEnv([make_env] * N_ENVS)
    if rlft:
        model = rlft_cls("MlpPolicy", env, kl_coef=kl_coef, **kwargs)
        model.set_reference(model.policy if reference is None else reference)  # as rlft does; ignored at kl_coef 0
    else:
        model = sb3_cls("MlpPolicy", env, **kwargs)
    logs = _TrainLogs()
    model.set_logger(Logger(folder=None, output_formats=[logs]))
    model.learn(ROLLOUTS * N_STEPS * N_ENVS)
    # each dump holds the previous update's logs; the last update's are still in the logger
    last = {k: v for k, v in model.logger.name_to_value.items() if k.startswith("train/")}
    return model, [*logs.dumps, last]


def _optimizer_steps(model: BaseAlgorithm) -> int:
    """How many minibatch steps Adam took."""
    first = next(iter(model.policy.parameters()))
    return int(model.policy.optimizer.state[first]["step"])


@pytest.mark.parametrize("early_stop", [False, True], ids=["no-target-kl", "target-kl"])
@pytest.mark.parametrize("case", list(CASES))
def test_kl_coef_zero_is_sb3(case: str, early_stop: bool) -> None:
    target_kl = CASES[case][4] if early_stop else None
    ours, our_logs = _learn(case, rlft=True, target_kl=target_kl)
    our_rng = np.random.get_state()[1].copy()
    theirs, their_logs = _learn(case, rlft=False, target_kl=target_kl)
    their_rng = np.random.get_state()[1].copy()

    ours_sd, theirs_sd = ours.policy.state_dict(), theirs.policy.state_dict()
    assert ours_sd.keys() == theirs_sd.keys()
    for name, value in theirs_sd.items():
        assert torch.equal(ours_sd[name], value), name
    assert ours._n_updates == theirs._n_updates
    assert _optimizer_steps(ours) == _optimizer_steps(theirs)
    if early_stop:  # target_kl stopped at least one update before its last epoch
        assert theirs._n_updates < EPOCHS * ROLLOUTS
        assert _optimizer_steps(theirs) < EPOCHS * ROLLOUTS * N_STEPS * N_ENVS // BATCH
    else:
        assert theirs._n_updates == EPOCHS * ROLLOUTS
        assert _optimizer_steps(theirs) == EPOCHS * ROLLOUTS * N_STEPS * N_ENVS // BATCH
    np.testing.assert_array_equal(our_rng, their_rng)  # the same minibatch permutations were drawn

    assert len(our_logs) == len(their_logs) == ROLLOUTS
    for mine, sb3 in zip(our_logs, their_logs):
        assert set(mine) - set(sb3) == {"train/kl_coef"}  # rlft's only extra log at kl_coef 0 (no train/kl_ref)
        assert mine["train/kl_coef"] == 0.0
        assert mine.keys() >= sb3.keys()
        for key, value in sb3.items():
            assert mine[key] == value, key
        assert ("train/std" in sb3) == (case == "pendulum")
        assert ("train/clip_range_vf" in sb3) == (case == "pendulum")


@pytest.mark.parametrize("case", list(CASES))
def test_kl_coef_positive_changes_the_update(case: str) -> None:
    """A reference that differs from the learner must move the parameters away from SB3's -- so a silently dropped
    KL term fails here -- while the minibatches (global numpy RNG draws) stay SB3's."""
    reference = _learn_nothing(case, seed=1).policy  # a freshly initialised policy of another seed
    ours, our_logs = _learn(case, rlft=True, kl_coef=1.0, reference=reference)
    our_rng = np.random.get_state()[1].copy()
    theirs, _ = _learn(case, rlft=False)
    their_rng = np.random.get_state()[1].copy()

    ours_sd, theirs_sd = ours.policy.state_dict(), theirs.policy.state_dict()
    assert any(not torch.equal(ours_sd[k], v) for k, v in theirs_sd.items())
    assert ours._n_updates == theirs._n_updates == EPOCHS * ROLLOUTS
    assert _optimizer_steps(ours) == _optimizer_steps(theirs)
    np.testing.assert_array_equal(our_rng, their_rng)  # one permutation per epoch, as SB3's RolloutBuffer.get
    assert all(log["train/kl_coef"] == 1.0 and log["train/kl_ref"] > 0 for log in our_logs)


def _learn_nothing(case: str, seed: int) -> BaseAlgorithm:
    sb3_cls, _, make_env, _, _ = CASES[case]
    return sb3_cls("MlpPolicy", DummyVecEnv([make_env] * N_ENVS), n_steps=N_STEPS, batch_size=BATCH, seed=seed,
                   device="cpu", policy_kwargs={"net_arch": [32, 32]})


class _CompareMinibatches(BaseCallback):
    """At the end of a rollout (buffer full, not yet flattened): the reference cache draws nothing from the global
    numpy RNG, and ``_minibatches`` yields SB3's ``get()`` minibatches, in SB3's order, from the same RNG state."""

    def __init__(self) -> None:
        super().__init__()
        self.checked = 0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model: Any = self.model
        buffer = model.rollout_buffer
        assert not buffer.generator_ready
        state = np.random.get_state()
        _ReferenceCache(model.policy, buffer)
        assert buffer.generator_ready
        after = np.random.get_state()
        assert all(np.array_equal(a, b) for a, b in zip(state, after))
        ours = list(_minibatches(buffer, BATCH))
        ours_state = np.random.get_state()
        np.random.set_state(state)
        theirs = list(buffer.get(BATCH))
        assert all(np.array_equal(a, b) for a, b in zip(ours_state, np.random.get_state()))
        assert len(ours) == len(theirs) == N_STEPS * N_ENVS // BATCH
        for (idx, mine), sb3 in zip(ours, theirs):
            assert len(idx) == BATCH
            for field in sb3._fields:
                assert torch.equal(getattr(mine, field), getattr(sb3, field)), field
        self.checked += 1


@pytest.mark.parametrize("case", ["cartpole", "masked"])
def test_minibatches_are_sb3s(case: str) -> None:
    _, rlft_cls, make_env, _, _ = CASES[case]
    model = rlft_cls("MlpPolicy", DummyVecEnv([make_env] * N_ENVS), n_steps=N_STEPS, batch_size=BATCH, n_epochs=1,
                     seed=0, device="cpu", policy_kwargs={"net_arch": [8]})
    callback = _CompareMinibatches()
    model.learn(N_STEPS * N_ENVS, callback=callback)
    assert callback.checked == 1


# Hyper-parameters that take other branches of the update (entropy bonus, no advantage normalisation, a last
# minibatch of 2 or of 1, which SB3's PPO does not normalise).
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "entropy-no-normalisation": {"ent_coef": 0.05, "normalize_advantage": False},
    "last-minibatch-of-2": {"batch_size": 42},
    "last-minibatch-of-1": {"batch_size": 127},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", list(CASES))
def test_a_negligible_kl_coef_takes_the_kl_path_and_is_still_sb3(case: str, variant: str) -> None:
    """``kl_coef = 1e-30`` sends every update through the KL path (the reference cache, rlft's minibatches, the one
    forward pass for the loss and the distribution) while adding nothing float32 can hold to the loss or its
    gradient: the parameters and the logs must still be SB3's, bit for bit."""
    if case == "masked" and variant.startswith("last-minibatch"):
        pytest.skip("MaskablePPO normalises a minibatch of one too (to NaN); nothing to compare")
    reference = _learn_nothing(case, seed=1).policy
    ours, our_logs = _learn(case, rlft=True, kl_coef=1e-30, reference=reference, **VARIANTS[variant])
    theirs, their_logs = _learn(case, rlft=False, **VARIANTS[variant])
    ours_sd, theirs_sd = ours.policy.state_dict(), theirs.policy.state_dict()
    for name, value in theirs_sd.items():
        assert torch.equal(ours_sd[name], value), name
    assert _optimizer_steps(ours) == _optimizer_steps(theirs)
    for mine, sb3 in zip(our_logs, their_logs, strict=True):
        assert mine["train/kl_ref"] > 0  # the penalty was computed
        for key, value in sb3.items():
            assert mine[key] == value, key
