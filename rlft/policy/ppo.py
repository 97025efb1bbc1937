"""PPO with a KL penalty toward a frozen reference policy -- the one point where rlft changes SB3's algorithm.

:class:`KLPenaltyMixin` replaces ``train()`` of SB3's ``PPO`` and sb3-contrib's ``MaskablePPO`` with the same
clipped-surrogate update plus ``kl_coef * KL(pi_theta || pi_ref)``, where ``pi_ref`` is the policy fine-tuning
started from (the behaviour-cloned policy). Everything else -- rollouts, GAE, buffers, vectorised envs -- is SB3's.
The penalty keeps the first RL updates close to the demonstrations; the coefficient decays on a schedule
(:func:`kl_schedule`) so RL can later move away. With ``kl_coef == 0`` the update is SB3's, at SB3's speed.

Example::

    model = RlftPPO("MlpPolicy", env, kl_coef=0.1, kl_decay="linear")
    model.set_reference(bc_policy)
    model.learn(20_000)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import explained_variance


def kl_schedule(kind: str, coef: float, final: float = 0.0, half_life: float = 0.25) -> Callable[[float], float]:
    """KL coefficient as a function of training progress ``p`` in [0, 1] (0 = start).

    ``constant``: ``coef``; ``linear``: from ``coef`` to ``final`` at the end; ``exponential``: halves every
    ``half_life`` of training.
    """
    if kind == "constant":
        return lambda p: coef
    if kind == "linear":
        return lambda p: coef + (final - coef) * p
    if kind == "exponential":
        return lambda p: coef * math.pow(0.5, p / half_life)
    raise ValueError(f"unknown KL decay schedule {kind!r}")


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Exact KL(p || q) between categorical distributions given by (possibly masked) logits, per row.

    Masked actions carry logit -1e8 in both, so they have zero probability under p and contribute nothing.
    """
    return _log_prob_kl(torch.log_softmax(logits_p, dim=-1), torch.log_softmax(logits_q, dim=-1))


def _log_prob_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row from normalised log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def kl_to_reference(dist: Distribution, ref: Distribution | torch.distributions.Distribution) -> torch.Tensor:
    """KL(dist || ref) per sample, for SB3 categorical (masked or not) and diagonal-Gaussian distributions."""
    p = dist.distribution
    q = ref.distribution if isinstance(ref, Distribution) else ref
    if isinstance(p, torch.distributions.Categorical):  # torch keeps Categorical logits normalised
        return _log_prob_kl(p.logits, q.logits)  # type: ignore[arg-type, union-attr]
    kl = torch.distributions.kl_divergence(p, q)  # type: ignore[arg-type]
    return kl.sum(-1) if kl.dim() > 1 else kl


def evaluate_with_distribution(policy: ActorCriticPolicy, obs: torch.Tensor, actions: torch.Tensor,
                               masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None,
                                                                    Distribution]:
    """``policy.evaluate_actions`` that also returns the action distribution (one forward pass for both)."""
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features)
    dist = policy._get_action_dist_from_latent(latent_pi)
    if masks is not None:
        dist.apply_masking(masks)  # type: ignore[attr-defined]
    return policy.value_net(latent_vf), dist.log_prob(actions), dist.entropy(), dist


def reference_distribution(ref: ActorCriticPolicy, obs: torch.Tensor, masks: torch.Tensor | None) -> Distribution:
    """The frozen reference policy's action distribution (masked like the learner's)."""
    with torch.no_grad():
        dist = ref.get_distribution(obs) if masks is None else ref.get_distribution(obs, action_masks=masks)  # type: ignore[call-arg]
    return dist


class _ReferenceCache:
    """The reference policy's distribution over a whole rollout, computed once per update (the reference is frozen
    and the rollout fixed), then sliced per minibatch -- instead of one reference forward pass per minibatch."""

    def __init__(self, ref: ActorCriticPolicy, buffer: Any) -> None:
        n = buffer.buffer_size * buffer.n_envs
        if not buffer.generator_ready:
            next(buffer.get(n))  # SB3 flattens the buffer in place on first use
        everything = buffer._get_samples(np.arange(n))
        dist = reference_distribution(ref, everything.observations, getattr(everything, "action_masks", None))
        self.dist: Any = dist.distribution

    def kl(self, dist: Distribution, idx: np.ndarray) -> torch.Tensor:
        """KL(dist || reference) per sample of the minibatch ``idx`` (as :func:`kl_to_reference`)."""
        d, index = self.dist, torch.as_tensor(idx)
        if isinstance(d, torch.distributions.Categorical):  # sliced log-probabilities, no new distribution
            return _log_prob_kl(dist.distribution.logits, d.logits[index])  # type: ignore[arg-type, index, union-attr]
        return kl_to_reference(dist, torch.distributions.Normal(d.mean[index], d.stddev[index]))


def _minibatches(buffer: Any, batch_size: int) -> Any:
    """SB3's minibatch order, yielding (indices, samples) so per-rollout caches can be sliced."""
    n = buffer.buffer_size * buffer.n_envs
    indices = np.random.permutation(n)
    for start in range(0, n, batch_size):
        idx = indices[start:start + batch_size]
        yield idx, buffer._get_samples(idx)


if TYPE_CHECKING:
    _Algorithm = PPO  # what the mixin is mixed into, for the type checker
else:
    _Algorithm = object


class KLPenaltyMixin(_Algorithm):
    """Adds ``kl_coef * KL(pi || pi_ref)`` to PPO's loss. Mix in before ``PPO`` or ``MaskablePPO``."""

    def __init__(self, *args: Any, kl_coef: float = 0.0, kl_decay: str = "constant", kl_coef_final: float = 0.0,
                 kl_half_life: float = 0.25, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kl_coef = kl_coef
        self.kl_coef_fn = kl_schedule(kl_decay, kl_coef, kl_coef_final, kl_half_life)
        self.ref_policy: ActorCriticPolicy | None = None

    def set_reference(self, policy: ActorCriticPolicy) -> None:
        """Freeze a copy of ``policy`` as the KL reference."""
        ref = copy.deepcopy(policy)
        ref.set_training_mode(False)
        for p in ref.parameters():
            p.requires_grad_(False)
        self.ref_policy = ref

    def current_kl_coef(self) -> float:
        progress = 1.0 - float(self._current_progress_remaining)
        return max(0.0, self.kl_coef_fn(progress)) if self.ref_policy is not None else 0.0

    def train(self) -> None:
        """One PPO update over the rollout buffer, with the KL-to-reference penalty."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = (self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
                         if self.clip_range_vf is not None else None)
        kl_coef = self.current_kl_coef()
        use_kl = kl_coef > 0 and self.ref_policy is not None
        ref_cache = _ReferenceCache(self.ref_policy, self.rollout_buffer) if use_kl else None  # type: ignore[arg-type]
        stats: dict[str, list[float]] = {k: [] for k in ("entropy", "pg", "value", "approx_kl", "clip", "kl_ref")}
        continue_training = True
        for _epoch in range(self.n_epochs):
            batches = (_minibatches(self.rollout_buffer, self.batch_size) if ref_cache is not None
                       else ((None, b) for b in self.rollout_buffer.get(self.batch_size)))
            for idx, batch in batches:
                actions = batch.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                masks = getattr(batch, "action_masks", None)
                values, log_prob, entropy, dist = evaluate_with_distribution(
                    self.policy, batch.observations, actions, masks)
                values = values.flatten()

                advantages = batch.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = torch.exp(log_prob - batch.old_log_prob)
                policy_loss = -torch.min(advantages * ratio,
                                         advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)).mean()
                if clip_range_vf is not None:
                    values = batch.old_values + torch.clamp(values - batch.old_values, -clip_range_vf, clip_range_vf)
                value_loss = F.mse_loss(batch.returns, values)
                entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                if ref_cache is not None and idx is not None:
                    kl_ref = ref_cache.kl(dist, idx)
                    loss = loss + kl_coef * kl_ref.mean()
                    stats["kl_ref"].append(kl_ref.mean().item())

                with torch.no_grad():
                    log_ratio = log_prob - batch.old_log_prob
                    approx_kl = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).item()
                stats["pg"].append(policy_loss.item())
                stats["value"].append(value_loss.item())
                stats["entropy"].append(entropy_loss.item())
                stats["approx_kl"].append(approx_kl)
                stats["clip"].append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        buffer = self.rollout_buffer
        record = self.logger.record
        record("train/entropy_loss", np.mean(stats["entropy"]))
        record("train/policy_gradient_loss", np.mean(stats["pg"]))
        record("train/value_loss", np.mean(stats["value"]))
        record("train/approx_kl", np.mean(stats["approx_kl"]))
        record("train/clip_fraction", np.mean(stats["clip"]))
        record("train/loss", loss.item())
        record("train/explained_variance", explained_variance(buffer.values.flatten(), buffer.returns.flatten()))
        record("train/n_updates", self._n_updates, exclude="tensorboard")
        record("train/clip_range", clip_range)
        record("train/kl_coef", kl_coef)
        if stats["kl_ref"]:
            record("train/kl_ref", np.mean(stats["kl_ref"]))


class RlftPPO(KLPenaltyMixin, PPO):
    """SB3 PPO with the KL-to-reference penalty."""


class RlftMaskablePPO(KLPenaltyMixin, MaskablePPO):  # type: ignore[misc]
    """sb3-contrib MaskablePPO (action masks) with the KL-to-reference penalty."""
