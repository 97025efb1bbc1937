"""The policy stages, one file each: ``record``, ``imitate``, ``finetune``, ``eval``."""
