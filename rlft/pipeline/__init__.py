"""The pipeline layer: the pipeline config, stage context, typed artifacts and results, the stage registry and the
runner. It imports only :mod:`rlft.core`; the kinds of model plug in through the registry."""
