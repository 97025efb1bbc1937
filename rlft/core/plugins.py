"""One resolver for every plugin string: stages, envs, agents/opponents, reward functions, datasets, agent loaders.

A plugin spec is one of

* a built-in name (``cartpole``, ``random``, ``exact_match``) from the table the caller passes;
* a name offered by an installed package through an entry-point group (``rlft.stages``, ``rlft.envs``,
  ``rlft.agents``, ``rlft.rewards``, ``rlft.datasets``, ``rlft.agent_loaders``);
* ``path/to/file.py:Name`` -- a Python file anywhere on disk;
* ``pkg.module:Name`` -- an importable module.

Errors say what was tried, so a typo is quick to fix.

Example::

    make_env = resolve("my_envs/maze.py:make_env", kind="env")
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from rlft.core.datasets import BUILTIN_DATASETS
from rlft.core.errors import PluginError, RlftError

_NAMED_BY: ContextVar[str | None] = ContextVar("rlft_code_named_by", default=None)
_TRUSTED: ContextVar[bool] = ContextVar("rlft_trust_code", default=False)
_USER_SPECS: ContextVar[frozenset[str]] = ContextVar("rlft_user_specs", default=frozenset())


@contextmanager
def user_given(*specs: str) -> Iterator[None]:
    """Inside the block, these specs count as the user's own (given on the command line or in the config of a new
    run), even where a file names them too -- e.g. the env in ``agent.json`` of a model this run just trained."""
    token = _USER_SPECS.set(_USER_SPECS.get() | {s for s in specs if s})
    try:
        yield
    finally:
        _USER_SPECS.reset(token)


@contextmanager
def trusting(trust_code: bool) -> Iterator[None]:
    """Inside the block, code that files name may be imported when ``trust_code`` (the CLI's ``--trust-code``)."""
    token = _TRUSTED.set(trust_code)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


@contextmanager
def code_named_by(source: str | None) -> Iterator[None]:
    """Inside the block, plugin specs come from ``source`` -- a file rlft was handed (a run folder's saved config, a
    checkpoint's ``agent.json``) -- rather than from the user: built-in names and installed entry points still resolve,
    but a ``pkg.module:Name`` or ``file.py:Name`` spec is refused, because importing it runs whatever the file names.
    ``None`` (the user opted in with ``--trust-code`` / ``trust_code=True``) lifts the rule.

    Example::

        with plugins.code_named_by(None if trust_code else f"the saved config '{path}'"):
            cfg = load_pipeline(path)
    """
    token = _NAMED_BY.set(source)
    try:
        yield
    finally:
        _NAMED_BY.reset(token)


def code_source() -> str | None:
    """The file the plugin specs being resolved come from (see :func:`code_named_by`); None: the user."""
    return _NAMED_BY.get()


def code_trusted() -> bool:
    """True inside :func:`trusting` with ``trust_code``."""
    return _TRUSTED.get()


@dataclass(frozen=True)
class TrustRules:
    """The rules of :func:`code_named_by`, :func:`trusting` and :func:`user_given` in force, as plain data, so another
    process (a Ray actor playing games) resolves specs under the same rules: ``with trust_rules().applied(): ...``."""

    named_by: str | None
    trusted: bool
    user_specs: frozenset[str]

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside the block, these rules are the ones in force."""
        tokens = _NAMED_BY.set(self.named_by), _TRUSTED.set(self.trusted), _USER_SPECS.set(self.user_specs)
        try:
            yield
        finally:
            _USER_SPECS.reset(tokens[2])
            _TRUSTED.reset(tokens[1])
            _NAMED_BY.reset(tokens[0])


def trust_rules() -> TrustRules:
    """The trust rules in force here (see :class:`TrustRules`)."""
    return TrustRules(_NAMED_BY.get(), _TRUSTED.get(), _USER_SPECS.get())


def check_code_allowed(spec: str, kind: str) -> None:
    """Refuse to import the code a ``module:Name`` / ``file.py:Name`` spec names when a file named it (see
    :func:`code_named_by`); the error names the spec, the file and the opt-in."""
    source = _NAMED_BY.get()
    if source is not None and not _TRUSTED.get() and spec not in _USER_SPECS.get():
        raise PluginError(
            f"The {kind} '{spec}' is code named in {source}. rlft does not import code that a file names without an "
            "opt-in: it would run whatever the file says. If you trust the file, pass --trust-code "
            "(trust_code=True from Python); otherwise use a built-in or an installed plugin by name.")


def entry_point_names(group: str) -> dict[str, str]:
    """``{name: "module:attr"}`` for every entry point an installed package offers in ``group``."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def _load_file(path: Path, kind: str, spec: str) -> Any:
    # A stable, unique module name per file so the same file loaded twice is the same module.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"rlft_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginError(f"Cannot load {kind} plugin '{spec}': '{path}' is not a Python file.")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise PluginError(
            f"The {kind} plugin file '{path}' (from spec '{spec}') failed to import: {type(e).__name__}: {e}. "
            "Fix the error in that file; run it with `python` to see the full traceback."
        ) from e
    return module


def is_path_spec(spec: str) -> bool:
    """True for ``path/to/file.py:Name`` (or a bare ``file.py``)."""
    target = spec.rsplit(":", 1)[0]
    return target.endswith(".py")


def import_object(spec: str, kind: str = "plugin") -> Any:
    """Import ``pkg.module:Name`` or ``path/file.py:Name`` and return the object (no built-in lookup)."""
    if ":" not in spec:
        raise PluginError(
            f"Cannot resolve {kind} '{spec}': expected a built-in name, 'pkg.module:Name' or 'path/to/file.py:Name'."
        )
    target, attr = spec.rsplit(":", 1)
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise PluginError(f"Cannot resolve {kind} '{spec}': the file '{path}' does not exist.")
        module = _load_file(path, kind, spec)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise PluginError(
                f"Cannot resolve {kind} '{spec}': module '{target}' cannot be imported ({e}). "
                "Install the package that provides it, or give a file path instead: 'path/to/file.py:Name'."
            ) from e
        except Exception as e:
            raise PluginError(
                f"The {kind} plugin module '{target}' (from spec '{spec}') failed to import: {type(e).__name__}: {e}."
            ) from e
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))
            raise PluginError(
                f"Cannot resolve {kind} '{spec}': '{target}' has no attribute '{attr}'. "
                f"It defines: {', '.join(public[:20]) or 'nothing public'}."
            )
        obj = getattr(obj, part)
    return obj


def resolve(
    spec: str,
    *,
    kind: str,
    builtins: Mapping[str, Any] | None = None,
    group: str | None = None,
) -> Any:
    """Resolve ``spec`` to an object: built-in name, entry point in ``group``, file path, or module path.

    ``builtins`` values may be objects or ``"module:attr"`` strings (imported lazily).
    """
    builtins = builtins or {}
    tried = []
    if spec in builtins:
        value = builtins[spec]
        return import_object(value, kind) if isinstance(value, str) else value
    tried.append(f"built-in {kind}s ({', '.join(sorted(builtins)) or 'none'})")
    if group is not None:
        eps = {ep.name: ep for ep in entry_points(group=group)}
        if spec in eps:
            try:
                return eps[spec].load()
            except Exception as e:
                raise PluginError(
                    f"The {kind} '{spec}' offered by an installed package (entry point group '{group}', "
                    f"{eps[spec].value}) failed to load: {type(e).__name__}: {e}."
                ) from e
        tried.append(f"entry points in group '{group}' ({', '.join(sorted(eps)) or 'none installed'})")
    if ":" in spec:
        check_code_allowed(spec, kind)
        return import_object(spec, kind)
    tried.append("'pkg.module:Name' and 'path/to/file.py:Name' (the spec has no ':')")
    raise PluginError(f"Unknown {kind} '{spec}'. Tried: " + "; ".join(tried) + ".")


def call_factory(factory: Callable[..., Any], kwargs: Mapping[str, Any], *, kind: str, spec: str) -> Any:
    """Call a plugin factory with keyword arguments, turning its exceptions into a PluginError naming the plugin."""
    try:
        return factory(**kwargs)
    except RlftError:  # already one paragraph naming the problem (e.g. a dataset wheel that is not installed)
        raise
    except Exception as e:
        raise PluginError(
            f"The {kind} plugin '{spec}' raised {type(e).__name__} when called with {dict(kwargs)}: {e}"
        ) from e


def dataset_names() -> list[str]:
    """Every dataset a ``data.source`` may name: the built-in ones (:mod:`rlft.core.datasets`) and those installed
    packages offer in the entry-point group ``rlft.datasets``."""
    return sorted({*BUILTIN_DATASETS, *entry_point_names("rlft.datasets")})


def is_dataset_name(source: str) -> bool:
    """True when ``source`` names a dataset (built-in or entry point) rather than a file or folder."""
    return source in BUILTIN_DATASETS or source in entry_point_names("rlft.datasets")


def dataset_table(name: str) -> dict[str, list[Any]]:
    """The table of a named dataset: a built-in one (:mod:`rlft.core.datasets`: ``bbc_news``, ``tweets_sentiment``,
    ``mnist_5k``, ``digits``, ``vader_words``) or one an installed package offers in the entry-point group
    ``rlft.datasets``.

    A dataset plugin is a callable with no arguments returning ``{column: [values]}`` (all columns of one length);
    the stage's data config then picks its columns (``prompt_column`` / ``input_column`` ...) as for a file.
    """
    factory = resolve(name, kind="dataset", builtins=BUILTIN_DATASETS, group="rlft.datasets")
    table = call_factory(factory, {}, kind="dataset", spec=name) if callable(factory) else factory
    if not isinstance(table, Mapping) or not table:
        raise PluginError(f"The dataset plugin '{name}' returned {type(table).__name__}; it must return a non-empty "
                          "mapping {column: [values]}.")
    lengths = {k: len(v) for k, v in table.items()}
    if len(set(lengths.values())) != 1:
        raise PluginError(f"The dataset plugin '{name}' returned columns of different lengths: {lengths}.")
    return {str(k): list(v) for k, v in table.items()}
