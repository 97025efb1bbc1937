"""The network trunk at a lower precision, for PPO's update and rollouts (``finetune.precision``).

``bf16`` runs the trunk (features extractor and MLP extractor) in bfloat16 while weights, heads, losses and optimizer
state stay fp32: in the update through autocast (:func:`evaluate_with_distribution`,
:func:`reference_distribution`), in the rollouts through bf16 copies of the trunk refreshed once per rollout
(:class:`RolloutTrunk`; autocast alone re-casts the weights on every small forward pass and is slower than fp32).
:func:`update_dtype` resolves the setting; ``auto`` picks bf16 only where it is fast (:func:`bf16_is_fast`).
"""

from __future__ import annotations

import copy
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel

PRECISIONS = ("fp32", "bf16", "auto")


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bfloat16 matmuls and convolutions beat fp32 on ``device``: a GPU that supports bf16, or a CPU with
    AMX tiles (Intel Sapphire Rapids and later). Without AMX, CPU bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private torch API; absent: assume no AMX
        return bool(amx is not None and amx())
    return False


def update_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the PPO update's trunk for a ``precision`` setting (None: plain fp32).

    ``fp32``: never; ``bf16``: always; ``auto``: bf16 where :func:`bf16_is_fast`, else fp32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "bf16" or (precision == "auto" and bf16_is_fast(device)):
        return torch.bfloat16
    return None


def trunk_latents(policy: ActorCriticPolicy, obs: torch.Tensor, dtype: torch.dtype | None = None,
                  trunk: tuple[Any, Any, Any] | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's and the critic's latents of ``obs`` (SB3's features extractors, then its MLP extractor).

    ``dtype`` (e.g. ``torch.bfloat16``): the trunk runs in autocast at that precision and the latents come back in
    fp32, so whatever follows (heads, distribution, losses) stays fp32. ``trunk``: (actor features extractor, critic
    features extractor, MLP extractor) to run instead of the policy's own (:class:`RolloutTrunk`'s cast copies).
    """
    pi_extractor, vf_extractor, mlp = trunk or (policy.pi_features_extractor, policy.vf_features_extractor,
                                                policy.mlp_extractor)  # SB3's modules, or cast copies of them
    with torch.autocast(device_type=obs.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        # what policy.extract_features(obs) does: preprocess, then the extractor(s)
        pi_features = BaseModel.extract_features(policy, obs, pi_extractor)
        if policy.share_features_extractor:
            latent_pi, latent_vf = mlp(pi_features)
        else:
            latent_pi = mlp.forward_actor(pi_features)
            latent_vf = mlp.forward_critic(BaseModel.extract_features(policy, obs, vf_extractor))
    if dtype is not None:
        latent_pi, latent_vf = latent_pi.float(), latent_vf.float()
    return latent_pi, latent_vf


class RolloutTrunk:
    """The policy's trunk cast to ``dtype`` for the rollouts: copies of its features extractor(s) and MLP extractor
    whose weights are refreshed from the fp32 ones at the start of each rollout (weights do not change within one),
    so no forward pass re-casts them as autocast alone would (at a batch of 8 envs that cast costs more than bf16
    saves). The arithmetic is the update's: autocast rounds fp32 weights to bf16 the same way.

    Within :meth:`patch`, ``policy(obs)`` and ``policy.predict_values(obs)`` -- the two calls SB3's
    ``collect_rollouts()`` makes -- run this trunk with the policy's fp32 heads. ``predict()`` and
    ``get_distribution()`` (evaluation, opponents) are untouched.
    """

    def __init__(self, policy: ActorCriticPolicy, dtype: torch.dtype) -> None:
        self.policy, self.dtype = policy, dtype
        modules = [policy.pi_features_extractor, policy.vf_features_extractor, policy.mlp_extractor]
        copies: dict[int, tuple[torch.nn.Module, torch.nn.Module]] = {}  # (fp32, cast); a shared extractor once
        for module in modules:
            if id(module) not in copies:
                copies[id(module)] = (module, copy.deepcopy(module).to(dtype).requires_grad_(False).eval())
        self.pairs = list(copies.values())
        self.trunk: tuple[Any, Any, Any] = tuple(copies[id(m)][1] for m in modules)  # type: ignore[assignment]

    def refresh(self) -> None:
        """Copy the policy's current weights (and buffers) into the cast trunk."""
        with torch.no_grad():
            for source, cast in self.pairs:
                for value, target in zip(source.state_dict().values(), cast.state_dict().values()):
                    target.copy_(value)

    @contextmanager
    def patch(self) -> Iterator[None]:
        """Refresh, then route the policy's ``forward`` and ``predict_values`` through the cast trunk."""
        self.refresh()
        owner, trunk, dtype = self.policy, self.trunk, self.dtype

        def forward(self: ActorCriticPolicy, obs: torch.Tensor, deterministic: bool = False,
                    action_masks: Any = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            if self is not owner:  # a copy taken inside the block: its own weights, SB3's forward
                extra = {} if action_masks is None else {"action_masks": action_masks}
                return type(self).forward(self, obs, deterministic, **extra)  # type: ignore[no-any-return]
            # SB3's ActorCriticPolicy.forward / sb3-contrib's MaskableActorCriticPolicy.forward, on the cast trunk
            latent_pi, latent_vf = trunk_latents(self, obs, dtype, trunk)  # type: ignore[arg-type]
            values = self.value_net(latent_vf)
            dist = self._get_action_dist_from_latent(latent_pi)  # private SB3 API, as forward() uses it
            if action_masks is not None:
                dist.apply_masking(action_masks)  # type: ignore[attr-defined]
            actions = dist.get_actions(deterministic=deterministic)
            log_prob = dist.log_prob(actions)
            return actions.reshape((-1, *self.action_space.shape)), values, log_prob  # type: ignore[misc]

        def predict_values(self: ActorCriticPolicy, obs: torch.Tensor) -> torch.Tensor:
            if self is not owner:
                return type(self).predict_values(self, obs)
            # SB3's ActorCriticPolicy.predict_values, on the cast trunk
            with torch.autocast(device_type=obs.device.type, dtype=dtype):
                latent_vf = trunk[2].forward_critic(BaseModel.extract_features(self, obs, trunk[1]))
            return self.value_net(latent_vf.float())  # type: ignore[no-any-return]

        # bound methods as instance attributes shadow the class's (nn.Module.__call__ looks up self.forward);
        # removed on the way out
        object.__setattr__(owner, "forward", types.MethodType(forward, owner))
        object.__setattr__(owner, "predict_values", types.MethodType(predict_values, owner))
        try:
            yield
        finally:
            for name in ("forward", "predict_values"):
                owner.__dict__.pop(name, None)


def evaluate_with_distribution(policy: ActorCriticPolicy, obs: torch.Tensor, actions: torch.Tensor,
                               masks: torch.Tensor | None, dtype: torch.dtype | None = None,
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, Distribution]:
    """``policy.evaluate_actions`` that also returns the action distribution (one forward pass for both).

    ``dtype`` (e.g. ``torch.bfloat16``): run the trunk in autocast at that precision; the latents come back in fp32,
    so the action and value heads, the distribution and every loss stay fp32.
    """
    latent_pi, latent_vf = trunk_latents(policy, obs, dtype)
    # private SB3 API: evaluate_actions() builds the distribution with it but does not return it
    dist = policy._get_action_dist_from_latent(latent_pi)
    if masks is not None:
        dist.apply_masking(masks)  # type: ignore[attr-defined]
    return policy.value_net(latent_vf), dist.log_prob(actions), dist.entropy(), dist


def reference_distribution(ref: ActorCriticPolicy, obs: torch.Tensor, masks: torch.Tensor | None,
                           dtype: torch.dtype | None = None) -> Distribution:
    """The frozen reference policy's action distribution (masked like the learner's); ``dtype``: its trunk in
    autocast, as :func:`evaluate_with_distribution` runs the learner's."""
    with torch.no_grad():
        if dtype is None:
            return ref.get_distribution(obs) if masks is None else ref.get_distribution(obs, action_masks=masks)  # type: ignore[call-arg]
        with torch.autocast(device_type=obs.device.type, dtype=dtype):  # SB3's get_distribution(), trunk in dtype
            features = BaseModel.extract_features(ref, obs, ref.pi_features_extractor)
            latent_pi = ref.mlp_extractor.forward_actor(features)
        dist = ref._get_action_dist_from_latent(latent_pi.float())  # private SB3 API, as get_distribution() uses it
        if masks is not None:
            dist.apply_masking(masks)  # type: ignore[attr-defined]
        return dist
