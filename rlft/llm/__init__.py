"""The LLM kind: causal LMs through the pipeline -- ``build`` -> ``pretrain`` -> ``sft`` -> ``rl`` (-> ``llm_eval``).

Each stage is one readable file in :mod:`rlft.llm.stages`: ``build`` (tiny tokenizer + model built offline),
``pretrain`` (self-supervised causal LM), ``sft`` (TRL SFTTrainer), ``rl`` (TRL GRPOTrainer / RLOOTrainer with reward
plugins), ``llm_eval`` (held-out exact match and reward). Shared pieces: :mod:`rlft.llm.config` (the leaf config
module), :mod:`rlft.llm.data`, :mod:`rlft.llm.model`, :mod:`rlft.llm.rewards`, :mod:`rlft.llm.generation`,
:mod:`rlft.llm.evaluate`, :mod:`rlft.llm.trainer`. See docs/llm.md.
"""
