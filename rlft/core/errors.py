"""User-facing errors.

Every problem a user can fix (a wrong config key, a broken env plugin, a corrupt checkpoint) is raised as an
:class:`RlftError` whose message names the problem and the fix. The CLI prints the message and exits with code 2
(no traceback unless ``--debug``); library callers can catch it like any exception.
"""

from __future__ import annotations


class RlftError(Exception):
    """A problem with the user's input, explained in one paragraph. The CLI exits with code 2."""

    exit_code = 2


class ConfigError(RlftError):
    """A config file or ``--set`` override is invalid (unknown key, wrong type, out-of-range value)."""


class PluginError(RlftError):
    """A plugin spec (env, agent, opponent, reward, ...) could not be resolved or breaks its contract."""


class EnvCheckError(PluginError):
    """An environment breaks the Gymnasium / PettingZoo API."""


class CheckpointError(RlftError):
    """A checkpoint or run folder is missing, corrupt or of an unknown format."""


class DatasetError(RlftError):
    """A dataset is missing, corrupt, or does not match the environment."""


class RunDirError(RlftError):
    """The run folder cannot be used as asked (non-empty without ``--resume``, nothing to resume, ...)."""


class IllegalActionError(RlftError):
    """A policy chose an action that the action mask forbids, or a state has no legal action."""
