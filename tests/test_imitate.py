"""Behaviour cloning and critic warm-up: accuracy, the critic-only update, return targets, exact resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.datasets import Transitions, load_transitions
from rlft.policy.stages.imitate import ImitateConfig, behaviour_clone, discounted_targets


def _policy(data: Transitions, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_policy(PolicySpec(), data.observation_space, data.action_space)


def test_bc_agrees_with_expert_on_held_out_states(expert_dataset: Path) -> None:
    data = load_transitions(expert_dataset)
    policy = _policy(data)
    summary = behaviour_clone(policy, data, ImitateConfig(epochs=20, critic_warmup_epochs=0, holdout_fraction=0.2),
                              seed=0)
    assert summary["imitation/holdout_accuracy"] >= 0.95


def test_critic_warmup_moves_only_the_critic(expert_dataset: Path) -> None:
    data = load_transitions(expert_dataset)
    policy = _policy(data)
    actor_before = {k: v.clone() for k, v in policy.state_dict().items() if "value" not in k}
    critic_before = {k: v.clone() for k, v in policy.state_dict().items() if "value" in k}
    cfg = ImitateConfig(epochs=0, critic_warmup_epochs=3, gamma=0.9)
    summary = behaviour_clone(policy, data, cfg, seed=0)
    for k, v in policy.state_dict().items():
        if k in actor_before:
            assert torch.equal(v, actor_before[k]), k
    assert any(not torch.equal(policy.state_dict()[k], v) for k, v in critic_before.items())
    assert np.isfinite(summary["imitation/critic_loss"])


def test_discounted_targets_by_hand() -> None:
    # Two episodes: rewards [1, 2, 3] (truncated) and [5] (terminated), gamma 0.5.
    data = Transitions(
        observations=np.zeros((4, 1), np.float32), actions=np.zeros(4, np.int64), action_masks=None,
        rewards=np.array([1, 2, 3, 5], np.float32), episode=np.array([0, 0, 0, 1]),
        terminated=np.array([0, 0, 0, 1], bool), truncated=np.array([0, 0, 1, 0], bool),
        last_observations=np.zeros((2, 1), np.float32), observation_space=None, action_space=None)  # type: ignore[arg-type]
    returns, to_end = discounted_targets(data, 0.5)
    np.testing.assert_allclose(returns, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 5])
    np.testing.assert_allclose(to_end, [0.125, 0.25, 0.5, 0.5])  # gamma**(steps to the bootstrap state)


def test_masked_bc_never_imitates_illegal_actions() -> None:
    import gymnasium as gym

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(512, 4)).astype(np.float32)
    masks = np.ones((512, 3), bool)
    masks[:, 2] = False  # action 2 is never legal
    actions = (obs[:, 0] > 0).astype(np.int64)
    data = Transitions(observations=obs, actions=actions, action_masks=masks, rewards=np.zeros(512, np.float32),
                       episode=np.arange(512) // 16, terminated=np.zeros(512, bool), truncated=np.zeros(512, bool),
                       last_observations=np.zeros((32, 4), np.float32),
                       observation_space=gym.spaces.Box(-5, 5, (4,)), action_space=gym.spaces.Discrete(3))
    policy = build_policy(PolicySpec(), data.observation_space, data.action_space, masked=True)
    with torch.no_grad():  # a huge logit on the illegal action
        policy.action_net.bias[2] = 1e4
    summary = behaviour_clone(policy, data, ImitateConfig(epochs=5, critic_warmup_epochs=0), seed=0)
    assert np.isfinite(summary["imitation/loss"]) and summary["imitation/holdout_accuracy"] > 0.9


def test_imitate_resume_gives_identical_weights(tmp_path: Path, expert_dataset: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from rlft.core.checkpoint import Checkpointer
    from rlft.core.rundir import load_safetensors
    from rlft.pipeline.config import pipeline_from_dict
    from rlft.pipeline.runner import run_pipeline

    overrides = [f"imitate.dataset={expert_dataset}", "stages=[imitate]", "imitate.epochs=4",
                 "imitate.critic_warmup_epochs=2", "imitate.checkpoint_every=1"]
    cfg = pipeline_from_dict({}, overrides=overrides)
    run_pipeline(cfg, tmp_path / "straight")

    real_prune = Checkpointer.prune

    def prune_then_die(self: Checkpointer) -> None:  # runs once a checkpoint is complete and in place
        real_prune(self)
        latest = self.latest()
        if latest is not None and self.step_of(latest) == 3:
            raise KeyboardInterrupt  # the process dies right after its epoch-3 checkpoint

    monkeypatch.setattr(Checkpointer, "prune", prune_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cfg, tmp_path / "killed")
    monkeypatch.setattr(Checkpointer, "prune", real_prune)
    run_pipeline(cfg, tmp_path / "killed", resume=True)

    a = load_safetensors(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_safetensors(tmp_path / "killed" / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
