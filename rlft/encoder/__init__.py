"""The encoder kind: a pretrained backbone + new head (``classify``), and the self-supervised stages that feed it
(``mlm`` for text encoders, ``ssl_image`` for image encoders). Configs in :mod:`rlft.encoder.config`."""
