"""Policy networks: actor-critic MLP and a small CNN for board games, as Stable-Baselines3 policies.

rlft's game policies *are* SB3 ``ActorCriticPolicy`` objects (``MaskableActorCriticPolicy`` when the env has action
masks), so behaviour cloning, PPO fine-tuning and SB3's own checkpoints share one set of weights and key names.
:class:`PolicySpec` is the part of the config that describes the network; it is saved beside the weights so a
checkpoint can be rebuilt without code.

Example::

    spec = PolicySpec(arch="mlp", net_arch=[64, 64])
    policy = build_policy(spec, env.observation_space, env.action_space, masked=False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU}


@dataclass
class PolicySpec:
    """The policy network. Saved in every checkpoint's metadata."""

    arch: Literal["mlp", "cnn"] = "mlp"
    """`mlp`: flatten the observation, then hidden layers; `cnn`: a small conv trunk for board planes (H, W, C)."""
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer sizes of the separate actor and critic heads."""
    activation: Literal["tanh", "relu", "gelu", "elu"] = "tanh"
    """Activation between hidden layers."""
    cnn_channels: list[int] = field(default_factory=lambda: [64, 64])
    """Conv channels of the `cnn` trunk (3x3 kernels, padding 1, so board size is preserved)."""
    ortho_init: bool = True
    """Orthogonal initialisation, as in SB3/CleanRL PPO."""


class BoardCNN(BaseFeaturesExtractor):
    """A small conv trunk for board-game planes (H, W, C), channel-last as PettingZoo gives them.

    SB3's NatureCNN needs 36x36+ images; boards are 3x3 or 6x7, so this keeps the size with 3x3 kernels, padding 1.
    """

    def __init__(self, observation_space: gym.spaces.Box, channels: list[int] | None = None) -> None:
        channels = channels or [64, 64]
        h, w, c = observation_space.shape
        features_dim = channels[-1] * h * w
        super().__init__(observation_space, features_dim)
        layers: list[nn.Module] = []
        in_c = c
        for out_c in channels:
            layers += [nn.Conv2d(in_c, out_c, kernel_size=3, padding=1), nn.ReLU()]
            in_c = out_c
        self.cnn = nn.Sequential(*layers, nn.Flatten())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.cnn(observations.permute(0, 3, 1, 2).float())  # type: ignore[no-any-return]


def policy_kwargs(spec: PolicySpec) -> dict[str, Any]:
    """SB3 ``policy_kwargs`` for a spec (also what rlft passes to PPO/MaskablePPO)."""
    kwargs: dict[str, Any] = {
        "net_arch": dict(pi=list(spec.net_arch), vf=list(spec.net_arch)),
        "activation_fn": ACTIVATIONS[spec.activation],
        "ortho_init": spec.ortho_init,
    }
    if spec.arch == "cnn":
        kwargs["features_extractor_class"] = BoardCNN
        kwargs["features_extractor_kwargs"] = {"channels": list(spec.cnn_channels)}
        kwargs["normalize_images"] = False
    return kwargs


def policy_class(masked: bool) -> type[ActorCriticPolicy]:
    """``MaskableActorCriticPolicy`` for envs with action masks, else ``ActorCriticPolicy``."""
    return MaskableActorCriticPolicy if masked else ActorCriticPolicy  # type: ignore[return-value]


def build_policy(
    spec: PolicySpec,
    observation_space: gym.Space[Any],
    action_space: gym.Space[Any],
    masked: bool = False,
    lr: float = 3e-4,
) -> ActorCriticPolicy:
    """Build a fresh actor-critic policy (random init; its optimizer is an Adam with ``lr``)."""
    if spec.arch == "cnn" and (not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 3):
        raise ValueError(f"arch 'cnn' needs (H, W, C) observations, got {observation_space}")
    cls = policy_class(masked)
    return cls(observation_space, action_space, lambda _: lr, **policy_kwargs(spec))


def action_logits(policy: ActorCriticPolicy, obs: torch.Tensor) -> torch.Tensor:
    """Unmasked action logits of a Discrete-action policy for a batch of (preprocessed) observations."""
    features = policy.extract_features(obs, policy.pi_features_extractor)
    latent_pi = policy.mlp_extractor.forward_actor(features)  # type: ignore[arg-type]
    return policy.action_net(latent_pi)  # type: ignore[no-any-return]


def masked_logits(logits: torch.Tensor, mask: torch.Tensor | np.ndarray | None) -> torch.Tensor:
    """Logits with illegal actions set to a large negative number (same constant as sb3-contrib, so the maths match)."""
    if mask is None:
        return logits
    mask_t = torch.as_tensor(mask, device=logits.device).bool().reshape(logits.shape)
    return torch.where(mask_t, logits, torch.tensor(-1e8, dtype=logits.dtype, device=logits.device))


def layer_groups(policy: ActorCriticPolicy) -> list[list[nn.Module]]:
    """The policy's trunk from input to output as groups of layers, for the `freeze` tuning mode.

    Group 0 is the features extractor (the CNN trunk; empty for an MLP), then one group per hidden depth holding the
    actor's and the critic's layer at that depth. The heads (``action_net``, ``value_net``) are not in any group:
    they are always trained.
    """
    groups: list[list[nn.Module]] = []
    extractors = {id(m): m for m in (policy.features_extractor, policy.pi_features_extractor,
                                     policy.vf_features_extractor) if m is not None}
    trunk: list[nn.Module] = [m for m in extractors.values() if any(True for _ in m.parameters())]
    groups.append(trunk)
    pi_layers = [m for m in policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    vf_layers = [m for m in policy.mlp_extractor.value_net if isinstance(m, nn.Linear)]
    for depth in range(max(len(pi_layers), len(vf_layers))):
        group: list[nn.Module] = []
        if depth < len(pi_layers):
            group.append(pi_layers[depth])
        if depth < len(vf_layers):
            group.append(vf_layers[depth])
        groups.append(group)
    return [g for g in groups if g]


def head_modules(policy: ActorCriticPolicy) -> list[nn.Module]:
    """The output heads that every tuning mode trains."""
    return [policy.action_net, policy.value_net]


def critic_parameters(policy: ActorCriticPolicy) -> list[nn.Parameter]:
    """Parameters used only by the critic (for critic warm-up, which must not move the actor)."""
    params = list(policy.mlp_extractor.value_net.parameters()) + list(policy.value_net.parameters())
    if not policy.share_features_extractor:
        params += list(policy.vf_features_extractor.parameters())
    return params
