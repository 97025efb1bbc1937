"""Supervised and self-supervised fine-tuning of pretrained encoders, as pipeline stages.

* :mod:`rlft.supervised.classify` -- the ``classify`` stage: backbone + new head, tuning modes full/freeze/lora.
* :mod:`rlft.supervised.pretrain` -- self-supervised stages: ``mlm`` (BERT's masked-language model) for text
  encoders, ``ssl_image`` (rotation prediction or masked-pixel reconstruction) for image encoders.
* :mod:`rlft.supervised.episode` -- classification as a one-step episode for the PPO machinery (the degenerate-
  reward view, see docs/supervised.md).
* :mod:`rlft.supervised.compare` -- ``rlft compare``: metric, parameters, time and memory across runs.
"""
