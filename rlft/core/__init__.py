"""The domain-free core: config loader, plugin resolver, run folder, checkpointer, metrics, runtime (device, seeds,
threads), tuning (full / freeze / LoRA), errors, env plugins and the Agent protocol. It imports no other rlft layer."""
