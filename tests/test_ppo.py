"""PPO maths against hand-computed numbers, and reproducibility."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.ppo import categorical_kl, evaluate_with_distribution, kl_schedule, kl_to_reference


def test_gae_matches_hand_computation() -> None:
    """rlft uses SB3's RolloutBuffer for GAE; check it with the gamma/lambda rlft passes, by hand."""
    from stable_baselines3.common.buffers import RolloutBuffer

    gamma, lam = 0.9, 0.8
    buf = RolloutBuffer(3, gym.spaces.Box(-1, 1, (1,)), gym.spaces.Discrete(2), gamma=gamma, gae_lambda=lam)
    rewards, values, starts = [1.0, 0.0, 2.0], [0.5, 0.4, 0.3], [1.0, 0.0, 1.0]  # a new episode starts at t=2
    for r, v, s in zip(rewards, values, starts):
        buf.add(np.zeros((1, 1)), np.zeros((1, 1)), np.array([r]), np.array([s]), torch.tensor([v]),
                torch.tensor([0.0]))
    last_value, done = 0.2, np.array([0.0])
    buf.compute_returns_and_advantage(last_values=torch.tensor([last_value]), dones=done)
    # t=2: delta = 2 + 0.9*0.2 - 0.3 = 1.88 (bootstraps from last_value)
    # t=1: next step starts a new episode -> delta = 0 - 0.4 = -0.4, A = -0.4
    # t=0: delta = 1 + 0.9*0.4 - 0.5 = 0.86; A = 0.86 + 0.9*0.8*(-0.4) = 0.572
    np.testing.assert_allclose(buf.advantages.flatten(), [0.572, -0.4, 1.88], atol=1e-6)
    np.testing.assert_allclose(buf.returns.flatten(), [1.072, 0.0, 2.18], atol=1e-6)


def test_categorical_kl_by_hand() -> None:
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.1438...
    assert categorical_kl(p.log()[None], q.log()[None]).item() == pytest.approx(expected, abs=1e-6)
    # Masked actions (logit -1e8 in both) contribute nothing.
    pm = torch.tensor([[math.log(0.5), math.log(0.5), -1e8]])
    qm = torch.tensor([[math.log(0.25), math.log(0.75), -1e8]])
    assert categorical_kl(pm, qm).item() == pytest.approx(expected, abs=1e-6)
    assert categorical_kl(pm, pm).item() == pytest.approx(0.0, abs=1e-9)


def test_categorical_kl_is_over_the_last_axis() -> None:
    """Logits with extra leading axes (e.g. time x batch x actions) give one KL per distribution."""
    torch.manual_seed(0)
    p, q = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    expected = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=p),
                                                 torch.distributions.Categorical(logits=q))
    torch.testing.assert_close(categorical_kl(p, q), expected)
    torch.testing.assert_close(categorical_kl(p[0, 0], q[0, 0]), expected[0, 0])  # one distribution


def test_gaussian_kl_by_hand() -> None:
    from stable_baselines3.common.distributions import DiagGaussianDistribution

    d1, d2 = DiagGaussianDistribution(2), DiagGaussianDistribution(2)
    d1.proba_distribution(torch.tensor([[0.0, 1.0]]), torch.tensor([0.0, 0.0]))
    d2.proba_distribution(torch.tensor([[1.0, 1.0]]), torch.tensor([math.log(2.0), 0.0]))
    # KL(N(0,1) || N(1,2^2)) = log 2 + (1 + 1)/(2*4) - 1/2 ; second dim identical -> 0
    expected = math.log(2.0) + 2 / 8 - 0.5
    assert kl_to_reference(d1, d2).item() == pytest.approx(expected, abs=1e-6)


def test_kl_schedules() -> None:
    assert kl_schedule("constant", 0.2)(0.7) == pytest.approx(0.2)
    assert kl_schedule("linear", 0.2)(1.0) == 0.0  # by default the linear schedule ends at 0
    assert kl_schedule("exponential", 0.2)(0.25) == pytest.approx(0.1)  # and the exponential halves every quarter
    assert kl_schedule("linear", 0.2, 0.0)(0.5) == pytest.approx(0.1)
    assert kl_schedule("exponential", 0.2, half_life=0.25)(0.5) == pytest.approx(0.05)


@pytest.mark.parametrize(("kind", "expected"), [
    # progress 0 (start), 0.25, 1 (end): by hand from the schedules' definitions; the start and end values tell a
    # schedule from its reverse, which p = 0.5 alone cannot.
    ("linear", [0.4, 0.4 + (0.0 - 0.4) * 0.25, 0.0]),
    ("exponential", [0.4, 0.4 * 0.5 ** (0.25 / 0.25), 0.4 * 0.5 ** (1 / 0.25)]),
])
def test_kl_coefficient_during_training_follows_the_schedule_forward(kind: str, expected: list[float]) -> None:
    """The model's coefficient at training progress p = 1 - progress_remaining (SB3's counter), both directions."""
    from stable_baselines3.common.env_util import make_vec_env

    from rlft.policy.ppo import RlftPPO

    model = RlftPPO("MlpPolicy", make_vec_env("CartPole-v1", 1), n_steps=32, batch_size=32, kl_coef=0.4,
                    kl_decay=kind, kl_coef_final=0.0, kl_half_life=0.25, device="cpu")
    model.set_reference(model.policy)
    coefs = []
    for remaining in (1.0, 0.75, 0.0):
        model._current_progress_remaining = remaining
        coefs.append(model.current_kl_coef())
    assert coefs == pytest.approx(expected)
    model.ref_policy = None
    assert model.current_kl_coef() == 0.0  # no reference: no penalty


@pytest.mark.parametrize("shared", [True, False], ids=["shared-features", "separate-features"])
@pytest.mark.parametrize("masked", [False, True])
def test_evaluate_with_distribution_matches_sb3(masked: bool, shared: bool) -> None:
    space = gym.spaces.Box(-1, 1, (4,))
    if shared:
        policy = build_policy(PolicySpec(), space, gym.spaces.Discrete(3), masked=masked)
    else:  # actor and critic with their own feature extractors (SB3's share_features_extractor=False)
        from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
        from stable_baselines3.common.policies import ActorCriticPolicy

        cls = MaskableActorCriticPolicy if masked else ActorCriticPolicy
        policy = cls(space, gym.spaces.Discrete(3), lambda _: 1e-3, share_features_extractor=False)
        assert not policy.share_features_extractor
    obs = torch.randn(8, 4)
    actions = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    masks = torch.tensor([[1, 1, 0]] * 8, dtype=torch.bool) if masked else None
    kwargs = {"action_masks": masks} if masked else {}
    v1, lp1, e1 = policy.evaluate_actions(obs, actions, **kwargs)
    v2, lp2, e2, _ = evaluate_with_distribution(policy, obs, actions, masks)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(lp1, lp2)
    torch.testing.assert_close(e1, e2)


def test_kl_penalty_enters_the_loss_and_is_logged() -> None:
    from rlft.policy.ppo import RlftPPO

    model = RlftPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0, kl_coef=0.5,
                    policy_kwargs={"net_arch": [16]})
    model.set_reference(model.policy)
    model.learn(128)
    values = model.logger.name_to_value
    assert values["train/kl_coef"] == pytest.approx(0.5)  # constant schedule by default
    assert values["train/kl_ref"] > 0  # the policy moved away from the reference, and the penalty saw it


def test_same_seed_same_result(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rlft.policy.stages.finetune import FinetuneConfig, FinetuneRunner

    def train() -> dict[str, torch.Tensor]:
        cfg = FinetuneConfig(start_from="scratch", total_timesteps=512, n_envs=2, n_steps=64, batch_size=64, n_epochs=2,
                             kl_coef=0.1)
        runner = FinetuneRunner(cfg=cfg, env_spec="cartpole", env_kwargs={}, seed=3, device="cpu")
        torch.manual_seed(3)
        runner.build(None, PolicySpec(net_arch=[32]))
        runner.learn()
        return {k: v.clone() for k, v in runner.model.policy.state_dict().items()}

    a, b = train(), train()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("case", ["discrete", "masked", "box"])
def test_reference_cache_equals_per_minibatch_reference(case: str) -> None:
    """Every branch of the per-rollout reference cache (categorical without and with masks, diagonal Gaussian for Box
    actions) gives the same KL as evaluating the reference on each minibatch, and a non-zero one."""
    from rlft.policy.ppo import (
        RlftMaskablePPO,
        RlftPPO,
        _minibatches,
        _ReferenceCache,
        kl_to_reference,
        reference_distribution,
    )

    class MaskedCartPole(gym.Wrapper):
        def action_masks(self) -> np.ndarray:
            return np.array([True, bool(self.env.unwrapped.state[2] < 0.0)])  # pole leaning left

    masked = case == "masked"
    env = gym.make("Pendulum-v1") if case == "box" else gym.make("CartPole-v1")
    env = MaskedCartPole(env) if masked else env
    algo = RlftMaskablePPO if masked else RlftPPO
    model = algo("MlpPolicy", env, n_steps=64, batch_size=16, seed=0, policy_kwargs={"net_arch": [8]})
    ref = build_policy(PolicySpec(net_arch=[8]), env.observation_space, env.action_space, masked=masked)
    model.set_reference(ref)
    model.learn(64)  # fills the rollout buffer
    cache = _ReferenceCache(model.ref_policy, model.rollout_buffer)
    kinds = {"box": torch.distributions.Normal}
    assert isinstance(cache.dist, kinds.get(case, torch.distributions.Categorical))
    for idx, batch in _minibatches(model.rollout_buffer, 16):
        masks = getattr(batch, "action_masks", None)
        if masked:
            assert 0 < masks[:, 1].sum() < len(idx)  # the mask removes an action in some of these steps, not all
        direct = reference_distribution(model.ref_policy, batch.observations, masks)
        learner = model.policy.get_distribution(batch.observations) if masks is None else \
            model.policy.get_distribution(batch.observations, action_masks=masks)
        from_cache = cache.kl(learner, idx)
        torch.testing.assert_close(from_cache, kl_to_reference(learner, direct))
        assert from_cache.shape == (len(idx),) and (from_cache > 0).any()


def test_the_kl_term_adds_exactly_its_own_gradient_to_one_update() -> None:
    """One rollout, one minibatch, plain SGD: the parameters after an update with kl_coef = c differ from those after
    the same update with kl_coef = 0 by exactly -lr * c * grad mean KL(pi || pi_ref), computed here independently with
    torch.distributions on the rollout's observations."""
    from stable_baselines3.common.env_util import make_vec_env

    from rlft.policy.ppo import RlftPPO

    lr, coef = 0.5, 0.3
    kwargs: dict = dict(n_steps=32, batch_size=64, n_epochs=1, learning_rate=lr, max_grad_norm=1e9, seed=0,
                        device="cpu", policy_kwargs={"net_arch": [8], "optimizer_class": torch.optim.SGD,
                                                     "optimizer_kwargs": {}})

    def updated(kl_coef: float) -> tuple[RlftPPO, dict[str, torch.Tensor]]:
        model = RlftPPO("MlpPolicy", make_vec_env("CartPole-v1", 2, seed=0), kl_coef=kl_coef, kl_decay="constant",
                        **kwargs)
        ref = build_policy(PolicySpec(net_arch=[8]), model.observation_space, model.action_space)
        torch.manual_seed(123)
        ref.load_state_dict({k: v + 0.3 * torch.randn_like(v) for k, v in model.policy.state_dict().items()})
        model.set_reference(ref)
        start = {k: v.clone() for k, v in model.policy.state_dict().items()}
        model.learn(64)  # 2 envs x 32 steps: one rollout, one update of one minibatch
        return model, start

    with_kl, start = updated(coef)
    without, start_0 = updated(0.0)
    assert all(torch.equal(start[k], start_0[k]) for k in start)  # same seed: same starting point and rollout

    policy = build_policy(PolicySpec(net_arch=[8]), with_kl.observation_space, with_kl.action_space)
    policy.load_state_dict(start)
    obs = torch.as_tensor(with_kl.rollout_buffer.observations.reshape(-1, 4))
    ref_logits = with_kl.ref_policy.get_distribution(obs).distribution.logits.detach()  # type: ignore[union-attr]
    kl = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=policy.get_distribution(obs)
                                                                           .distribution.logits),
                                           torch.distributions.Categorical(logits=ref_logits)).mean()
    kl.backward()
    grads = {n: p.grad for n, p in policy.named_parameters()}
    moved_kl, moved_0 = with_kl.policy.state_dict(), without.policy.state_dict()
    for name, grad in grads.items():
        if grad is None:
            continue
        torch.testing.assert_close(moved_kl[name] - moved_0[name], -lr * coef * grad, rtol=1e-4, atol=1e-6)
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values())  # the term really moves the actor


def test_the_reference_distribution_is_masked_like_the_learners() -> None:
    from rlft.policy.ppo import reference_distribution

    policy = build_policy(PolicySpec(), gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(3), masked=True)
    obs = torch.randn(5, 4)
    masks = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 1]], dtype=torch.bool)
    probs = reference_distribution(policy, obs, masks).distribution.probs  # type: ignore[attr-defined]
    assert torch.all(probs[~masks] == 0) and torch.allclose(probs.sum(-1), torch.ones(5))
    assert torch.all(reference_distribution(policy, obs, None).distribution.probs > 0)  # type: ignore[attr-defined]


def test_without_kl_settings_or_a_reference_rlft_ppo_is_plain_ppo() -> None:
    """The defaults: no KL penalty; a penalty configured but no reference set is no penalty either; and the linear
    schedule's default end point is 0. The reference set is a frozen copy."""
    from stable_baselines3.common.env_util import make_vec_env

    from rlft.policy.ppo import RlftPPO

    env = make_vec_env("CartPole-v1", 1, seed=0)
    plain = RlftPPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu")
    assert plain.ref_policy is None and plain.current_kl_coef() == 0.0
    plain.set_reference(plain.policy)
    assert plain.current_kl_coef() == 0.0  # kl_coef defaults to 0
    assert plain.ref_policy is not plain.policy and not any(p.requires_grad for p in plain.ref_policy.parameters())
    unset = RlftPPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu", kl_coef=0.5)
    assert unset.current_kl_coef() == 0.0  # no reference: nothing to be near
    unset.learn(16)  # and an update runs as plain PPO
    decaying = RlftPPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu", kl_coef=0.5, kl_decay="linear")
    decaying.set_reference(decaying.policy)
    decaying._current_progress_remaining = 0.0
    assert decaying.current_kl_coef() == 0.0
    halving = RlftPPO("MlpPolicy", env, n_steps=16, batch_size=16, device="cpu", kl_coef=0.5,
                      kl_decay="exponential")
    halving.set_reference(halving.policy)
    halving._current_progress_remaining = 0.75
    assert halving.current_kl_coef() == pytest.approx(0.25)  # the default half-life is a quarter of training
