"""`finetune.precision`: the PPO update's trunk in bfloat16 autocast is the fp32 update up to rounding, and learns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.precision import bf16_is_fast, evaluate_with_distribution, update_dtype


def test_precision_settings_resolve_to_an_autocast_dtype() -> None:
    cpu = torch.device("cpu")
    assert update_dtype("fp32", cpu) is None
    assert update_dtype("bf16", cpu) is torch.bfloat16
    assert update_dtype("auto", cpu) is (torch.bfloat16 if bf16_is_fast(cpu) else None)
    with pytest.raises(ValueError, match="precision must be one of"):
        update_dtype("fp16", cpu)


def test_a_wrong_precision_in_a_config_is_a_clear_error() -> None:
    from rlft.core.config import ConfigError, from_dict
    from rlft.policy.config import FinetuneConfig

    with pytest.raises(ConfigError, match="precision"):
        from_dict(FinetuneConfig, {"precision": "fp16"}, source="finetune")


def _board_policy() -> torch.nn.Module:
    torch.manual_seed(0)
    space = gym.spaces.Box(0, 1, (6, 7, 2), dtype=np.int8)  # Connect Four planes, the shipped CNN
    return build_policy(PolicySpec(arch="cnn", cnn_channels=[64, 64], net_arch=[128]), space,
                        gym.spaces.Discrete(7), masked=True)


def test_the_bf16_trunk_gives_fp32_outputs_close_to_fp32_and_the_same_gradient() -> None:
    policy = _board_policy()
    gen = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 2, (64, 6, 7, 2), generator=gen).float()
    actions = torch.randint(0, 7, (64,), generator=gen)
    masks = torch.ones(64, 7, dtype=torch.bool)
    masks[:, 6] = False
    actions[actions == 6] = 0

    def outputs_and_grad(dtype: torch.dtype | None) -> tuple[list[torch.Tensor], torch.Tensor]:
        policy.zero_grad()
        values, log_prob, entropy, _ = evaluate_with_distribution(policy, obs, actions, masks, dtype)
        (-(log_prob.mean()) + values.pow(2).mean() - 0.01 * entropy.mean()).backward()  # type: ignore[union-attr]
        grad = torch.cat([p.grad.flatten() for p in policy.parameters() if p.grad is not None])
        return [values, log_prob, entropy], grad  # type: ignore[list-item]

    exact, g32 = outputs_and_grad(None)
    rounded, g16 = outputs_and_grad(torch.bfloat16)
    for a, b in zip(exact, rounded):
        assert b.dtype == torch.float32  # heads, distribution and losses stay fp32
        torch.testing.assert_close(a, b, atol=0.03, rtol=0.03)  # bf16 keeps 8 bits of mantissa: ~0.4% per product
        assert not torch.equal(a, b)  # and it did run in bf16
    cosine = torch.nn.functional.cosine_similarity(g32, g16, dim=0)
    assert cosine > 0.99


def test_ppo_with_a_bf16_update_learns_the_separable_task() -> None:
    from rlft.policy.hooks import env_hooks
    from rlft.policy.stages.finetune import FinetuneConfig, FinetuneRunner

    spec = "rlft.encoder.episode:make_blobs_env"  # the same task and margins as tests/test_supervised_episode.py
    cfg = FinetuneConfig(start_from="scratch", total_timesteps=3072, n_envs=4, n_steps=64, batch_size=64, n_epochs=4,
                         learning_rate=3e-3, lr_schedule="constant", kl_coef=0.0, eval_every=0, gamma=1.0,
                         gae_lambda=1.0, eval_episodes=200, precision="bf16")
    runner = FinetuneRunner(cfg=cfg, env_spec=spec, env_kwargs={}, seed=0, device="cpu",
                            evaluator=env_hooks(spec).evaluator(cfg, seed=1000))
    runner.build(None, PolicySpec(net_arch=[16]))
    assert runner.model.update_dtype is torch.bfloat16
    runner.learn()
    first, last = runner.history[0][1]["eval/mean_return"], runner.history[-1][1]["eval/mean_return"]
    assert first < 0.7  # mean return = accuracy: near chance (1/3) before training
    assert last >= 0.95


@pytest.mark.parametrize("masked", [False, True])
def test_the_bf16_reference_distribution_is_the_fp32_one_up_to_rounding(masked: bool) -> None:
    from rlft.policy.precision import reference_distribution

    policy = _board_policy() if masked else build_policy(
        PolicySpec(arch="cnn", cnn_channels=[64, 64], net_arch=[128]),
        gym.spaces.Box(0, 1, (6, 7, 2), dtype=np.int8), gym.spaces.Discrete(7), masked=False)
    obs = torch.randint(0, 2, (32, 6, 7, 2), generator=torch.Generator().manual_seed(2)).float()
    masks = torch.ones(32, 7, dtype=torch.bool) if masked else None
    if masks is not None:
        masks[:, 3] = False
    exact = reference_distribution(policy, obs, masks).distribution.probs  # type: ignore[union-attr]
    rounded = reference_distribution(policy, obs, masks, torch.bfloat16).distribution.probs  # type: ignore[union-attr]
    assert rounded.dtype == torch.float32
    torch.testing.assert_close(exact, rounded, atol=0.01, rtol=0.05)
    assert not torch.equal(exact, rounded)
    if masks is not None:
        assert torch.all(rounded[:, 3] == 0)  # masked like the learner's


def test_the_rollout_forward_runs_the_trunk_in_bf16_inside_the_block_only() -> None:
    from rlft.policy.precision import RolloutTrunk

    policy = _board_policy()
    policy.set_training_mode(False)
    trunk = RolloutTrunk(policy, torch.bfloat16)
    obs = torch.randint(0, 2, (8, 6, 7, 2), generator=torch.Generator().manual_seed(2)).float()
    masks = torch.ones(8, 7, dtype=torch.bool)
    masks[:, 3] = False

    def rollout_step() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        torch.manual_seed(5)  # the same action samples in each call
        with torch.no_grad():
            actions, values, log_prob = policy(obs, action_masks=masks)
            return actions, values, log_prob, policy.predict_values(obs)  # type: ignore[return-value]

    exact = rollout_step()
    with trunk.patch():
        rounded = rollout_step()
        values, log_prob = evaluate_with_distribution(policy, obs, rounded[0], masks, torch.bfloat16)[:2]
    assert not (rounded[0] == 3).any()  # the mask still applies
    for a, b in zip(exact[1:], rounded[1:]):
        assert b.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=0.03, rtol=0.03)
        assert not torch.equal(a, b)  # it did run in bf16
    # the rollout's log-probabilities and values are the update's (same trunk), so PPO's first ratios start at 1
    torch.testing.assert_close(rounded[2], log_prob, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rounded[1], values, atol=1e-5, rtol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(exact, rollout_step()))  # and after the block, fp32 again


def test_a_copy_taken_inside_the_block_computes_its_own_outputs() -> None:
    import copy

    from rlft.policy.precision import RolloutTrunk

    policy = _board_policy()
    obs = torch.randint(0, 2, (4, 6, 7, 2), generator=torch.Generator().manual_seed(3)).float()
    with RolloutTrunk(policy, torch.bfloat16).patch():
        clone = copy.deepcopy(policy)
    with torch.no_grad():
        for p in clone.parameters():
            p.zero_()
        assert torch.equal(clone.predict_values(obs), torch.zeros(4, 1))  # the copy's weights, not the original's
        assert not torch.equal(policy.predict_values(obs), torch.zeros(4, 1))


def test_the_cast_trunk_follows_the_policy_weights_from_one_rollout_to_the_next() -> None:
    from rlft.policy.precision import RolloutTrunk

    policy = _board_policy()
    policy.set_training_mode(False)
    trunk = RolloutTrunk(policy, torch.bfloat16)
    obs = torch.randint(0, 2, (4, 6, 7, 2), generator=torch.Generator().manual_seed(4)).float()
    with torch.no_grad():
        with trunk.patch():
            before = policy.predict_values(obs)
        for p in policy.mlp_extractor.parameters():  # as an update would
            p.mul_(0.5)
        with trunk.patch():
            after = policy.predict_values(obs)
        exact = policy.predict_values(obs)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, exact, atol=0.03, rtol=0.03)
