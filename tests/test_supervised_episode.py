"""The degenerate-reward view: classification as a one-step episode learns through PPO, and the supervised
gradient is the reward-driven gradient with the reward made the log-likelihood of the true label."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from rlft.encoder.episode import ClassificationEpisodeEnv, blobs, make_blobs_env

SPEC = "rlft.encoder.episode:make_blobs_env"


def test_env_passes_the_gymnasium_checker_and_pays_for_the_right_label() -> None:
    env = make_blobs_env(n=50, seed=0)
    check_env(env, skip_render_check=True)
    _, info = env.reset(seed=3)
    _, reward, terminated, truncated, _ = env.step(info["label"])
    assert (reward, terminated, truncated) == (1.0, True, False)
    _, info = env.reset(seed=3)
    _, reward, _, _, _ = env.step((info["label"] + 1) % 3)
    assert reward == 0.0


def test_ppo_learns_a_separable_task_as_one_step_episodes() -> None:
    from rlft.policies.networks import PolicySpec
    from rlft.policy.hooks import env_hooks
    from rlft.policy.stages.finetune import FinetuneConfig, FinetuneRunner

    cfg = FinetuneConfig(start_from="scratch", total_timesteps=3072, n_envs=4, n_steps=64, batch_size=64, n_epochs=4,
                         learning_rate=3e-3, lr_schedule="constant", kl_coef=0.0, eval_every=0, gamma=1.0,
                         gae_lambda=1.0, eval_episodes=200)
    runner = FinetuneRunner(cfg=cfg, env_spec=SPEC, env_kwargs={}, seed=0, device="cpu",
                            evaluator=env_hooks(SPEC).evaluator(cfg, seed=1000))
    runner.build(None, PolicySpec(net_arch=[16]))
    runner.learn()
    first, last = runner.history[0][1]["eval/mean_return"], runner.history[-1][1]["eval/mean_return"]
    assert first < 0.7  # mean return = accuracy: near chance (1/3) before training
    assert last >= 0.95


def _policy(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(2, 3)


def _grad(policy: torch.nn.Module, objective: torch.Tensor) -> torch.Tensor:
    policy.zero_grad()
    objective.backward()
    return torch.cat([p.grad.flatten() for p in policy.parameters()])  # type: ignore[union-attr]


def test_supervised_gradient_is_the_reward_driven_gradient_with_log_likelihood_reward() -> None:
    features, labels = blobs(n=8, seed=1)
    x, y = torch.as_tensor(features), torch.as_tensor(labels)
    policy = _policy()

    supervised = -_grad(policy, torch.nn.functional.cross_entropy(policy(x), y, reduction="sum"))

    # Reward = log-likelihood of the true label (the same whatever action is sampled): E_a[r] = log pi(y|x).
    log_pi = torch.log_softmax(policy(x), -1)
    expected_reward = sum(log_pi[i].exp() @ log_pi[i, y[i]].expand(3) for i in range(len(y)))
    torch.testing.assert_close(_grad(policy, expected_reward), supervised)

    # REINFORCE with the action fixed to the known label and reward 1: sum_i grad log pi(y_i|x_i).
    reinforce_on_label = torch.log_softmax(policy(x), -1)[torch.arange(len(y)), y].sum()
    torch.testing.assert_close(_grad(policy, reinforce_on_label), supervised)


def test_zero_one_reward_gives_the_supervised_gradient_scaled_by_pi_of_the_label() -> None:
    features, labels = blobs(n=1, seed=2)
    x, y = torch.as_tensor(features), int(labels[0])
    policy = _policy()

    # Exact policy gradient of E_{a~pi}[1{a = y}] = pi(y|x) ...
    pi = torch.softmax(policy(x), -1)[0]
    exact = _grad(policy, (pi * (torch.arange(3) == y).float()).sum())
    supervised = -_grad(policy, torch.nn.functional.cross_entropy(policy(x), torch.tensor([y])))
    p_y = float(torch.softmax(policy(x), -1)[0, y])
    torch.testing.assert_close(exact, p_y * supervised)

    # ... which sampled REINFORCE estimates: mean over actions a ~ pi of 1{a = y} * grad log pi(a|x).
    generator = torch.Generator().manual_seed(0)
    actions = torch.multinomial(pi.detach(), 20_000, replacement=True, generator=generator)
    log_pi = torch.log_softmax(policy(x), -1)[0]
    estimate = _grad(policy, ((actions == y).float() * log_pi[actions]).mean())
    assert torch.allclose(estimate, exact, atol=0.01)


def test_env_rejects_mismatched_examples() -> None:


    with pytest.raises(ValueError, match="as many labels"):
        ClassificationEpisodeEnv(np.zeros((3, 2)), np.zeros(2))
