"""`finetune` really starts from the policy `start_from` names, for every kind of start.

For each kind (an earlier stage's agent by name, `previous`, a run folder, a checkpoint folder, an SB3 .zip read
weights-only and with the pickle opt-in) the PPO model ``FinetuneRunner.build`` makes holds exactly the source
policy's weights, and so does its KL reference; `scratch` holds fresh weights. A dropped ``load_state_dict`` or a
start that resolves to the wrong file fails here.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlft.core.rundir import RunDir
from rlft.pipeline.artifacts import Artifacts
from rlft.policies.checkpoint import save_policy
from rlft.policies.networks import PolicySpec, build_policy
from rlft.policy.agents import start_policy
from rlft.policy.config import FinetuneConfig
from rlft.policy.stages.finetune import FinetuneRunner

SPEC = PolicySpec(net_arch=[16])
OBS, ACT = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), gym.spaces.Discrete(2)


def _policy(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    policy = build_policy(SPEC, OBS, ACT)
    with torch.no_grad():  # weights no fresh initialisation would give
        for p in policy.parameters():
            p.add_(torch.randn_like(p))
    return policy


Sources = dict[str, tuple[str, Artifacts, dict[str, torch.Tensor]]]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Sources:
    """start_from value -> (value, artifacts, expected weights), one per kind of start."""
    from stable_baselines3 import PPO

    tmp_path = tmp_path_factory.mktemp("sources")
    cloned, other, in_run, ckpt = _policy(1), _policy(2), _policy(3), _policy(4)
    save_policy(tmp_path / "imitate_agent", cloned, SPEC, masked=False, env="cartpole", step=1)
    save_policy(tmp_path / "other_agent", other, SPEC, masked=False, env="cartpole", step=1)
    artifacts = Artifacts(agents={"imitate": str(tmp_path / "imitate_agent"), "other": str(tmp_path / "other_agent")})
    run = RunDir.create(tmp_path / "run").path
    save_policy(run / "final", in_run, SPEC, masked=False, env="cartpole", step=9)
    save_policy(tmp_path / "checkpoint", ckpt, SPEC, masked=False, env="cartpole", step=5)
    sb3 = PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [16]}, seed=0)
    with torch.no_grad():
        for p in sb3.policy.parameters():
            p.add_(1.0)
    sb3.save(tmp_path / "sb3.zip")

    def weights(policy: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in policy.state_dict().items()}

    empty = Artifacts()
    return {
        "stage name": ("imitate", artifacts, weights(cloned)),
        "previous": ("previous", artifacts, weights(other)),  # the newest agent: 'other' was added last
        "run folder": (str(run), empty, weights(in_run)),
        "checkpoint": (str(tmp_path / "checkpoint"), empty, weights(ckpt)),
        "sb3 zip": (str(tmp_path / "sb3.zip"), empty, weights(sb3.policy)),
        "sb3 zip trusted": (str(tmp_path / "sb3.zip"), empty, weights(sb3.policy)),
    }


@pytest.mark.parametrize("kind", ["stage name", "previous", "run folder", "checkpoint", "sb3 zip", "sb3 zip trusted"])
def test_finetune_starts_from_the_named_policy(kind: str, sources: Sources) -> None:
    start_from, artifacts, expected = sources[kind]
    trusted = kind == "sb3 zip trusted"
    start = start_policy(start_from, artifacts, by="finetune.start_from", device="cpu", trust_pickle=trusted,
                         env="cartpole")
    assert start is not None
    policy, meta = start
    if kind.startswith("sb3"):
        assert meta["loader"] == ("sb3-trusted" if trusted else "sb3-weights-only")
    cfg = FinetuneConfig(start_from=start_from, n_envs=2, batch_size=64)
    runner = FinetuneRunner(cfg=cfg, env_spec="cartpole", env_kwargs={}, seed=0, device="cpu")
    runner.build(policy, SPEC)
    built = runner.model.policy.state_dict()
    reference = runner.model.ref_policy.state_dict()
    assert built.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(built[name], value), name
        assert torch.equal(reference[name], value), name


def test_scratch_starts_from_fresh_weights(sources: Sources) -> None:
    assert start_policy("scratch", Artifacts(), by="finetune.start_from", device="cpu") is None
    cfg = FinetuneConfig(start_from="scratch", n_envs=2, batch_size=64)
    runner = FinetuneRunner(cfg=cfg, env_spec="cartpole", env_kwargs={}, seed=0, device="cpu")
    runner.build(None, SPEC)
    _, _, expected = sources["stage name"]
    built = runner.model.policy.state_dict()
    assert not any(torch.equal(built[k], v) for k, v in expected.items() if v.numel() > 1)
