"""The three tuning modes train exactly the intended parameters; LoRA saves, loads and merges faithfully."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlft.core.tuning import TuningConfig, apply_tuning, count_parameters, merge_lora
from rlft.policies.networks import PolicySpec, build_policy, head_modules, layer_groups

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (4,))
# MLP 4 -> 64 -> 64 per branch (actor and critic), heads 64 -> 2 and 64 -> 1.
FIRST = 2 * (4 * 64 + 64)        # first hidden layer of actor + critic
SECOND = 2 * (64 * 64 + 64)      # second hidden layer of actor + critic
HEADS = (64 * 2 + 2) + (64 + 1)  # action_net + value_net


def _policy() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_policy(PolicySpec(net_arch=[64, 64]), OBS_SPACE, gym.spaces.Discrete(2))


def _train_step(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.1)
    obs = torch.randn(32, 4)
    values, log_prob, _ = policy.evaluate_actions(obs, torch.randint(0, 2, (32,)))
    (values.pow(2).mean() - log_prob.mean()).backward()
    opt.step()
    return {k for k, v in policy.state_dict().items() if not torch.equal(v, before[k])}  # type: ignore[return-value]


def test_full_trains_everything() -> None:
    policy = _policy()
    counts = apply_tuning(policy, TuningConfig(mode="full"), layer_groups(policy), head_modules(policy))
    assert counts["trainable_params"] == counts["total_params"] == FIRST + SECOND + HEADS
    assert len(_train_step(policy)) == len(policy.state_dict())


def test_freeze_trains_last_layer_and_heads_only() -> None:
    policy = _policy()
    counts = apply_tuning(policy, TuningConfig(mode="freeze", trainable_layers=1), layer_groups(policy),
                          head_modules(policy))
    assert counts["trainable_params"] == SECOND + HEADS
    assert counts["total_params"] == FIRST + SECOND + HEADS
    changed = _train_step(policy)
    assert not any(".0." in k for k in changed)  # first hidden layers frozen
    assert {"action_net.weight", "value_net.weight", "mlp_extractor.policy_net.2.weight"} <= changed


def test_freeze_zero_layers_trains_heads_only() -> None:
    policy = _policy()
    counts = apply_tuning(policy, TuningConfig(mode="freeze", trainable_layers=0), layer_groups(policy),
                          head_modules(policy))
    assert counts["trainable_params"] == HEADS


def test_lora_trains_adapters_and_heads_only() -> None:
    policy = _policy()
    r = 4
    counts = apply_tuning(policy, TuningConfig(mode="lora", lora_r=r), layer_groups(policy), head_modules(policy))
    adapters = 2 * r * (4 + 64) + 2 * r * (64 + 64)  # A (r x in) + B (out x r) per adapted layer
    assert counts["trainable_params"] == adapters + HEADS
    assert counts["total_params"] == FIRST + SECOND + HEADS + adapters
    assert counts["trainable_params"] / counts["total_params"] < 0.5
    changed = _train_step(policy)
    assert all("lora_" in k or k.split(".")[0] in ("action_net", "value_net") for k in changed)
    assert not any("base_layer" in k for k in changed)


def test_lora_save_load_merge_identical_outputs(tmp_path: Path) -> None:
    from rlft.policies.checkpoint import load_policy, save_policy

    policy = _policy()
    apply_tuning(policy, TuningConfig(mode="lora", lora_r=4), layer_groups(policy), head_modules(policy))
    with torch.no_grad():  # make the adapters non-trivial (B starts at zero)
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    obs = torch.randn(16, 4)
    expected = policy.get_distribution(obs).distribution.logits
    save_policy(tmp_path / "lora", policy, PolicySpec(net_arch=[64, 64]), masked=False)
    loaded, meta = load_policy(tmp_path / "lora")
    assert meta["lora"]["r"] == 4
    torch.testing.assert_close(loaded.get_distribution(obs).distribution.logits, expected)
    merged = merge_lora(loaded)
    assert not any("lora_" in k for k in merged.state_dict())
    assert count_parameters(merged)[1] == FIRST + SECOND + HEADS
    torch.testing.assert_close(merged.get_distribution(obs).distribution.logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["freeze", "lora"])
def test_finetune_stage_respects_tuning_mode(mode: str, tmp_path: Path) -> None:
    from rlft.policy.stages.finetune import FinetuneConfig, FinetuneRunner

    cfg = FinetuneConfig(start_from="scratch", total_timesteps=256, n_envs=2, n_steps=64, batch_size=64, n_epochs=1,
                         tuning=TuningConfig(mode=mode))  # type: ignore[arg-type]
    runner = FinetuneRunner(cfg=cfg, env_spec="cartpole", env_kwargs={}, seed=0, device="cpu")
    runner.build(None, PolicySpec(net_arch=[64, 64]))
    frozen = {k: v.clone() for k, v in runner.model.policy.state_dict().items()
              if "lora_" not in k and not k.startswith(("action_net", "value_net"))
              and (mode == "lora" or ".0." in k)}
    runner.learn()
    after = runner.model.policy.state_dict()
    assert frozen and all(torch.equal(after[k], v) for k, v in frozen.items())
    assert runner.param_counts["trainable_params"] < runner.param_counts["total_params"]


def test_lora_settings_reach_the_adapters() -> None:
    """alpha / r scales each adapter's output (PEFT's ``scaling``), and the dropout is the configured one."""
    from peft.tuners.lora import LoraLayer

    policy = _policy()
    apply_tuning(policy, TuningConfig(mode="lora", lora_r=4, lora_alpha=12.0, lora_dropout=0.25),
                 layer_groups(policy), head_modules(policy))
    layers = [m for m in policy.modules() if isinstance(m, LoraLayer)]
    assert len(layers) == 4  # two hidden layers in the actor and in the critic
    for layer in layers:
        assert layer.r["default"] == 4 and layer.scaling["default"] == pytest.approx(12.0 / 4)
        assert layer.lora_dropout["default"].p == 0.25


def test_full_mode_unfreezes_what_was_frozen_and_lora_is_not_injected_twice() -> None:
    policy = _policy()
    apply_tuning(policy, TuningConfig(mode="freeze", trainable_layers=0), layer_groups(policy), head_modules(policy))
    assert not all(p.requires_grad for p in policy.parameters())
    counts = apply_tuning(policy, TuningConfig(mode="full"), layer_groups(policy), head_modules(policy))
    assert all(p.requires_grad for p in policy.parameters()) and counts["trainable_params"] == counts["total_params"]
    lora = _policy()
    first = apply_tuning(lora, TuningConfig(mode="lora", lora_r=4), layer_groups(lora), head_modules(lora))
    again = apply_tuning(lora, TuningConfig(mode="lora", lora_r=4), layer_groups(lora), head_modules(lora))
    assert again == first  # a resumed stage applies its tuning to a model that already has its adapters


@pytest.mark.parametrize("mode", ["freeze", "lora"])
def test_a_gaussian_policys_log_std_trains_with_the_head(mode: str) -> None:
    torch.manual_seed(0)
    policy = build_policy(PolicySpec(net_arch=[16]), OBS_SPACE, gym.spaces.Box(-1, 1, (2,)))
    apply_tuning(policy, TuningConfig(mode=mode, trainable_layers=0), layer_groups(policy), head_modules(policy))
    assert policy.log_std.requires_grad  # type: ignore[union-attr]


def test_lora_leaves_grouped_convolutions_out() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=4), torch.nn.Conv2d(4, 8, 1), torch.nn.Linear(8, 2))
    apply_tuning(net, TuningConfig(mode="lora", lora_r=2), [[net[0], net[1]]], [net[2]])
    names = {n for n, _ in net.named_parameters() if "lora_" in n}
    assert names and all(n.startswith("1.") for n in names)  # only the 1x1 convolution got an adapter
