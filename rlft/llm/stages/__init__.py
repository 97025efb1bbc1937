"""The LLM stages, one file each: ``build``, ``pretrain``, ``sft``, ``rl``, ``llm_eval``."""
