"""What a finished study leaves in its folder: ``best.yaml``, ``trials.md``, ``history.png``, ``importances.png``.

``best.yaml`` is the resolved config of the best complete trial (the one its run folder saved), so
``rlft train DIR/best.yaml`` runs it again -- same seed, same score. ``trials.md`` lists every trial, best first;
the plots come from ``optuna.visualization.matplotlib``.

Example::

    summary = write_report(tuner, top=10)
    summary["best"]["value"], summary["files"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlft.core.metrics import log
from rlft.core.rundir import write_json, write_text
from rlft.tune.study import SURPLUS, Tuner, quiet_warnings


def trial_rows(tuner: Tuner) -> list[dict[str, Any]]:
    """One row per trial (surplus ones left out): complete trials best first, then pruned, then the rest."""
    rows = []
    leaves = [p.key.rsplit(".", 1)[-1] for p in tuner.space.params]  # `learning_rate` for `finetune.learning_rate`
    short = {p.key: leaf for p, leaf in zip(tuner.space.params, leaves) if leaves.count(leaf) == 1}
    for t in tuner.study.get_trials(deepcopy=False):
        if t.user_attrs.get(SURPLUS):
            continue
        headline = t.user_attrs.get("headline") or {}
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     "metric": f"{headline['stage']} {headline['name']}" if headline else "-",
                     "value": headline.get("value", t.value) if headline else t.value, "last eval": last,
                     "evals": len(t.intermediate_values), "seconds": round(seconds, 1) if seconds else None,
                     **{short.get(k, k): v for k, v in t.params.items()}})
    order = {"complete": 0, "pruned": 1, "running": 2, "waiting": 3, "fail": 4}
    score = {t.number: t.value for t in tuner.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    return sorted(rows, key=lambda r: (order.get(r["state"], 5), -score.get(r["trial"], 0.0), r["trial"]))


def _markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no trials)\n"
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _plot(study: Any, kind: str, path: Path) -> bool:
    """Save one Optuna matplotlib plot; False (with a log line) when the study cannot make it yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis

    plot: Any = {"history": vis.plot_optimization_history, "importances": vis.plot_param_importances}[kind]
    try:
        with quiet_warnings():
            ax = plot(study)
    except Exception as e:  # e.g. importances need at least two complete trials with different values
        log.info("no %s plot: %s", kind, e)
        return False
    figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    figure.set_size_inches(8, 5)
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=100)
    tmp.replace(path)
    plt.close(figure)
    return True


def write_report(tuner: Tuner, top: int = 10) -> dict[str, Any]:
    """Write best.yaml, trials.md, summary.json and the PNG plots into the study folder; returns the summary."""
    study, folder = tuner.study, tuner.run_dir
    rows = trial_rows(tuner)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    files: list[str] = []
    best: dict[str, Any] | None = None
    if complete:
        trial = max(complete, key=lambda t: t.value)
        header = (f"# Best trial {trial.number} of the study '{tuner.study_name}' ({tuner.safe_url}):\n"
                  f"#   {', '.join(f'{k}={v}' for k, v in trial.params.items())}\n"
                  f"#   {trial.user_attrs.get('headline')}\n# Run it again: rlft train {folder / 'best.yaml'}\n")
        write_text(folder / "best.yaml", header + trial.user_attrs["config"])
        files.append("best.yaml")
        best = {"trial": trial.number, "score": trial.value, "params": trial.params,
                "headline": trial.user_attrs.get("headline"), "run_dir": trial.user_attrs.get("run_dir")}
    write_text(folder / "trials.md", f"# Study '{tuner.study_name}': {len(rows)} trials, best first\n\n"
               + _markdown(rows))
    files.append("trials.md")
    for kind in ("history", "importances"):
        if _plot(study, kind, folder / f"{kind}.png"):
            files.append(f"{kind}.png")
    counts = tuner.counts()
    summary = {"study": tuner.study_name, "storage": tuner.safe_url, "counts": counts, "best": best,
               "files": files, "top": rows[:top]}
    write_json(folder / "summary.json", summary)
    return summary
