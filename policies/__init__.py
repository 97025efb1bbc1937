"""Policy networks and pretrained-policy loaders (installed as ``rlft.policies``).

* :mod:`rlft.policies.networks` -- actor-critic MLP / board CNN as SB3 policies (:class:`PolicySpec`).
* :mod:`rlft.policies.checkpoint` -- rlft checkpoints: safetensors weights + JSON metadata.
* :mod:`rlft.policies.sb3_zip` -- Stable-Baselines3 ``.zip`` files: weights only, or a full load behind
  ``trust_pickle``.
"""

from rlft.policies.networks import PolicySpec, build_policy

__all__ = ["PolicySpec", "build_policy"]
