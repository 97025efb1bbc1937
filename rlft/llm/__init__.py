"""LLM fine-tuning through the rlft pipeline: ``init`` -> ``pretrain`` -> ``sft`` -> ``rl`` (-> ``llm_eval``).

Each stage is one readable file: :mod:`rlft.llm.init` (tiny tokenizer + model built offline),
:mod:`rlft.llm.pretrain` (self-supervised causal LM), :mod:`rlft.llm.sft` (TRL SFTTrainer), :mod:`rlft.llm.rl`
(TRL GRPOTrainer / RLOOTrainer with reward plugins), :mod:`rlft.llm.evaluate` (held-out exact match and reward).
Shared pieces: :mod:`rlft.llm.config`, :mod:`rlft.llm.data`, :mod:`rlft.llm.model`, :mod:`rlft.llm.rewards`,
:mod:`rlft.llm.common`. See docs/llm.md.
"""
