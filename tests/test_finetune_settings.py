"""Every PPO hyper-parameter of a `finetune` section reaches the SB3 model it builds.

Each setting is given a value unlike SB3's default (and unlike every other setting), so a dropped or swapped keyword
argument in ``FinetuneRunner.build`` fails here instead of silently training with SB3's default.
"""

from __future__ import annotations

import pytest
import torch

from rlft.core.tuning import TuningConfig
from rlft.policies.networks import PolicySpec
from rlft.policy.config import FinetuneConfig
from rlft.policy.stages.finetune import FinetuneRunner

SETTINGS = dict(n_envs=3, n_steps=24, batch_size=36, n_epochs=7, learning_rate=2.5e-3, gamma=0.93, gae_lambda=0.81,
                clip_range=0.13, ent_coef=0.011, vf_coef=0.37, max_grad_norm=0.77, target_kl=0.029, kl_coef=0.6,
                kl_coef_final=0.15, kl_half_life=0.4)


def build(**overrides: object) -> FinetuneRunner:
    cfg = FinetuneConfig(start_from="scratch", **{**SETTINGS, **overrides})  # type: ignore[arg-type]
    runner = FinetuneRunner(cfg=cfg, env_spec="cartpole", env_kwargs={}, seed=11, device="cpu")
    runner.build(None, PolicySpec(net_arch=[8]))
    return runner


def test_every_ppo_setting_reaches_sb3() -> None:
    model = build(lr_schedule="constant", kl_decay="constant").model
    assert model.n_envs == 3 and model.env.num_envs == 3
    assert (model.n_steps, model.batch_size, model.n_epochs) == (24, 36, 7)
    assert (model.gamma, model.gae_lambda) == (0.93, 0.81)
    assert model.clip_range(1.0) == pytest.approx(0.13) and model.clip_range(0.1) == pytest.approx(0.13)
    assert (model.ent_coef, model.vf_coef, model.max_grad_norm, model.target_kl) == (0.011, 0.37, 0.77, 0.029)
    assert model.rollout_buffer.buffer_size == 24 and model.rollout_buffer.gamma == 0.93
    assert model.rollout_buffer.gae_lambda == 0.81
    assert model.seed == 11
    assert model.lr_schedule(1.0) == pytest.approx(2.5e-3) and model.lr_schedule(0.2) == pytest.approx(2.5e-3)
    assert all(g["lr"] == pytest.approx(2.5e-3) for g in model.policy.optimizer.param_groups)
    assert model.kl_coef == 0.6 and model.kl_coef_fn(0.9) == pytest.approx(0.6)


def test_schedules_reach_sb3() -> None:
    linear = build(lr_schedule="linear", kl_decay="linear").model
    # SB3 passes progress_remaining (1 at the start, 0 at the end)
    assert linear.lr_schedule(1.0) == pytest.approx(2.5e-3) and linear.lr_schedule(0.25) == pytest.approx(6.25e-4)
    assert linear.kl_coef_fn(0.0) == pytest.approx(0.6) and linear.kl_coef_fn(1.0) == pytest.approx(0.15)
    assert linear.kl_coef_fn(0.5) == pytest.approx(0.375)
    exponential = build(kl_decay="exponential").model
    assert exponential.kl_coef_fn(0.4) == pytest.approx(0.3) and exponential.kl_coef_fn(0.8) == pytest.approx(0.15)


def test_freeze_tuning_reaches_the_optimizer() -> None:
    """With `tuning.mode: freeze` the frozen parameters are neither trainable nor in the optimizer, and one update
    leaves them unchanged while the head moves."""
    runner = build(tuning=TuningConfig(mode="freeze", trainable_layers=0), lr_schedule="constant", total_timesteps=72)
    policy = runner.model.policy
    frozen = {n for n, p in policy.named_parameters() if not p.requires_grad}
    assert frozen and len(frozen) < len(list(policy.parameters()))
    in_optimizer = {id(p) for g in policy.optimizer.param_groups for p in g["params"]}
    assert all(id(p) not in in_optimizer for n, p in policy.named_parameters() if n in frozen)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    runner.model.learn(72)
    after = dict(policy.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in after if n not in frozen)
