"""Hyper-parameter search over pipeline configs (Optuna): ``rlft tune``."""
