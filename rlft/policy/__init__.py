"""The policy kind: SB3 actor-critic game agents -- record -> imitate (BC + critic warm-up) -> finetune (PPO with a KL
penalty toward the starting policy; self-play on two-player games) -> eval. Configs in :mod:`rlft.policy.config`,
stages in :mod:`rlft.policy.stages`; what differs on a two-player game comes from :mod:`rlft.policy.hooks`."""
