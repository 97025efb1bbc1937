"""``rlft compare``: one table and one plot across run folders -- headline, parameters, time, memory.

Works on any run folder a pipeline wrote: every stage's typed result (``results.json``, or ``run.json`` for a run
that did not finish) declares a headline metric, and a run's headline is that of its last stage that has one -- held-out
accuracy for a classifier, the evaluation score of a game agent, greedy exact match of an LLM. Wall time is the sum
of the stages' seconds; peak memory is the largest ``peak_memory_mb`` a stage recorded; parameter counts are the last
``trainable_params`` / ``total_params`` a stage reported.

Example::

    rows = compare_runs(["runs/txt-full", "runs/txt-lora"])
    write_report(rows, "reports/txt")  # reports/txt/compare.md, reports/txt/compare.png
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlft.core.errors import RunDirError
from rlft.pipeline.results import StageResult, run_headline

COLUMNS = ("run", "kind", "metric", "value", "trainable", "total", "trainable %", "wall s", "peak MiB")
_DECIMALS = {"value": 4, "trainable %": 2, "wall s": 1, "peak MiB": 0}
_KIND_NAMES = {"policy": "game agent", "llm": "llm", "encoder": "classifier", "bridge": "game text"}


def read_results(path: str | Path) -> dict[str, StageResult]:
    """The typed results of a run folder's finished stages, in pipeline order."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"The run folder '{path}' does not exist.")
    for name in ("results.json", "run.json"):
        file = path / name
        if file.is_file():
            try:
                data = json.loads(file.read_text())
            except json.JSONDecodeError as e:
                raise RunDirError(f"'{file}' is not valid JSON ({e}); is the run still being written?") from e
            stages = data.get("stages", data) if name == "run.json" and isinstance(data, dict) else data
            if isinstance(stages, dict) and stages:
                return {k: StageResult.from_json(v) for k, v in stages.items() if isinstance(v, dict)}
    raise RunDirError(f"'{path}' is not an rlft run folder (no results.json or run.json with finished stages). "
                      "Pass folders given to `rlft train --run-dir`.")


def _param_counts(metrics: dict[str, Any]) -> tuple[int | None, int | None]:
    """(trainable, total) from keys like ``total_params`` or ``model/total_params``."""
    found: dict[str, int] = {}
    for key, value in metrics.items():
        for name in ("trainable_params", "total_params"):
            if key.split("/")[-1] == name and isinstance(value, int) and not isinstance(value, bool):
                found[name] = value
    return found.get("trainable_params"), found.get("total_params")


def summarize_run(path: str | Path, stage: str | None = None, metric_key: str | None = None) -> dict[str, Any]:
    """One table row for a run folder: its headline, or ``metric_key`` of its last (or of ``stage``'s) result."""
    path = Path(path)
    results = read_results(path)
    metric, value, kind = "-", None, "-"
    if stage is None and not metric_key:  # the run's headline: that of its last stage that has one
        found = run_headline(results)
        if found is not None:
            name, headline = found
            metric, value = f"{name} {headline.name}", headline.value
            kind = _KIND_NAMES.get(results[name].family, results[name].family or "-")
    else:
        if stage is not None:  # the row of one stage: figures up to and including it
            names = list(results)
            results = {n: results[n] for n in names[:names.index(stage) + 1]}
        picked = [(n, r) for n, r in results.items()
                  if (metric_key in r.metrics if metric_key else r.headline is not None)]
        if stage is not None:
            picked = [(n, r) for n, r in picked if n == stage]
        if picked:
            name, last = picked[-1]
            if metric_key:
                metric, value = f"{name} {metric_key}", last.metrics[metric_key]
            else:
                assert last.headline is not None
                metric, value = f"{name} {last.headline.name}", last.headline.value
            kind = _KIND_NAMES.get(last.family, last.family or "-")
    trainable = total = None
    peak: float | None = None
    wall = 0.0
    for result in results.values():
        counts = _param_counts(result.metrics)
        if counts[1] is not None:
            trainable, total = counts
        if isinstance(result.metrics.get("peak_memory_mb"), int | float):
            peak = max(peak or 0.0, float(result.metrics["peak_memory_mb"]))
        wall += result.seconds
    share = 100.0 * trainable / total if isinstance(trainable, int) and total else None
    return {"run": f"{path.name}:{stage}" if stage else path.name, "kind": kind, "metric": metric, "value": value,
            "trainable": trainable, "total": total, "trainable %": share,
            "wall s": round(wall, 1) if wall else None, "peak MiB": peak}


def compare_runs(paths: list[str | Path], stages: list[str] | None = None, metric: str | None = None
                 ) -> list[dict[str, Any]]:
    """Rows for every run folder, in the order given; with ``stages``, one row per listed stage a run has (each
    stage once: a stage two runs share, like their common SFT, comes from the first run that has it)."""
    if not paths:
        raise RunDirError("Give at least one run folder to compare.")
    if not stages:
        return [summarize_run(p, metric_key=metric) for p in paths]
    rows, done = [], set()
    for stage in stages:
        for p in paths:
            if stage in read_results(p) and stage not in done:
                rows.append(summarize_run(p, stage, metric))
                done.add(stage)
    missing = [s for s in stages if s not in done]
    if missing:
        raise RunDirError(f"No run folder given has the stage(s) {missing}; the stages they have: "
                          f"{sorted({n for p in paths for n in read_results(p)})}.")
    return rows


def _cell(value: Any, column: str = "value") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        digits = _DECIMALS.get(column, 4) if abs(value) < 10 or column != "value" else 2
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cell(row.get(c), c) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    """Four bar charts (metric, trainable parameters, wall time, peak memory), one bar per run, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["run"] for r in rows]
    panels = [("value", "headline metric"), ("trainable", "trainable parameters"),
              ("wall s", "wall time (s)"), ("peak MiB", "peak memory (MiB)")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for ax, (key, title) in zip(axes.flat, panels):
        values = [float(r[key]) if isinstance(r.get(key), int | float) else 0.0 for r in rows]
        bars = ax.bar(range(len(rows)), values, color="tab:blue")
        ax.set_xticks(range(len(rows)), names, rotation=20, ha="right", fontsize=8)
        metrics = sorted({r["metric"] for r in rows})
        ax.set_title(f"{title}: {', '.join(metrics)}" if key == "value" else title, fontsize=9)
        if key == "trainable" and any(v > 0 for v in values):
            ax.set_yscale("log")
        for bar, row in zip(bars, rows):
            ax.annotate(_cell(row.get(key), key), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def write_report(rows: list[dict[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``compare.md`` and ``compare.png`` into ``out_dir`` (created if needed); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, png = out / "compare.md", out / "compare.png"
    md.write_text("# rlft compare\n\n" + markdown_table(rows))
    plot(rows, png)
    return md, png
