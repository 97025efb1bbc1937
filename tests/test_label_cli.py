"""``rlft label`` driven by scripted stdin (people) and by a judge: both completions are shown and the answers recorded
as TRL preference pairs; bad input is asked again; a kill loses nothing answered; a second run asks only the rest."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from llm_helpers import tiny_llm  # noqa: F401  (session fixture)

from rlft.cli.main import main


def prompts_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"{i}+{i + 1}=", "answer": str(2 * i + 1)}) + "\n"
                            for i in range(n)))
    return path


def rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def shown(output: str) -> list[tuple[str, str, str]]:
    """(prompt, completion 1, completion 2) of every comparison printed."""
    found = re.findall(r"prompt: ('.*?')\n  1: ('.*?')\n  2: ('.*?')\n", output)
    return [tuple(ast.literal_eval(x) for x in triple) for triple in found]  # type: ignore[misc]


def label(model: Path, prompts: Path, out: Path, stdin: str, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(["label", str(model), "--prompts", str(prompts), "--out", str(out), "--max-new-tokens", "4",
                 *extra]) == 0
    return capsys.readouterr().out


def test_answers_are_recorded_bad_input_asked_again_and_a_second_run_asks_the_rest(
        tiny_llm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    prompts, out = prompts_file(tmp_path / "prompts.jsonl", 4), tmp_path / "prefs.jsonl"
    first = label(tiny_llm, prompts, out, "maybe\n1\n2\ntie\n", monkeypatch, capsys)  # then end of input: quit
    asked = shown(first)
    assert [p for p, _, _ in asked] == ["0+1=", "1+2=", "2+3=", "3+4="]  # the 4th shown, then stdin ended
    assert all(a != b for _, a, b in asked)
    assert "'maybe' is not an answer: type 1, 2, tie, skip or quit" in first
    assert first.count("which is better?") == 5  # the first prompt asked twice (bad input), then 3 more
    (p1, a1, b1), (p2, a2, b2) = asked[0], asked[1]
    assert rows(out) == [{"prompt": p1, "chosen": a1, "rejected": b1}, {"prompt": p2, "chosen": b2, "rejected": a2}]
    assert [r["answer"] for r in rows(Path(f"{out}.seen.jsonl"))] == ["1", "2", "tie"]

    second = label(tiny_llm, prompts, out, "skip\n", monkeypatch, capsys)
    assert "3 of 4 prompts answered before; 1 to go" in second
    assert [p for p, _, _ in shown(second)] == ["3+4="] and "[4/4]" in second
    assert len(rows(out)) == 2 and [r["answer"] for r in rows(Path(f"{out}.seen.jsonl"))][-1] == "skip"
    third = label(tiny_llm, prompts, out, "", monkeypatch, capsys)
    assert "4 of 4 prompts answered before; 0 to go" in third and not shown(third)


def test_a_kill_loses_nothing_answered(tiny_llm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                       capsys: pytest.CaptureFixture[str]) -> None:
    prompts, out = prompts_file(tmp_path / "prompts.jsonl", 3), tmp_path / "prefs.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlft.cli.main", "label", str(tiny_llm), "--prompts", str(prompts), "--out", str(out),
         "--max-new-tokens", "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.stdin is not None and proc.stdout is not None
    seen = ""
    try:
        for line in proc.stdout:  # answer the first comparison, then kill while the second one waits
            seen += line
            if "[1/3]" in line:
                proc.stdin.write("1\n")
                proc.stdin.flush()
            if "[2/3]" in line:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, seen
    ((prompt, a, b),) = shown(seen.split("[2/3]")[0] + "\n")
    assert rows(out) == [{"prompt": prompt, "chosen": a, "rejected": b}]  # the answer given before the kill

    again = label(tiny_llm, prompts, out, "2\n2\n", monkeypatch, capsys)
    assert "1 of 3 prompts answered before; 2 to go" in again
    assert [p for p, _, _ in shown(again)] == ["1+2=", "2+3="]  # the answered prompt is not asked twice
    assert [r["prompt"] for r in rows(out)] == ["0+1=", "1+2=", "2+3="]


def test_judge_orders_pairs_by_its_scores_and_flips_a_share(tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "judged.jsonl"
    args = ["label", str(tiny_llm), "--prompts", "addition", "--size", "60", "--out", str(out), "--max-new-tokens",
            "4", "--judge", "length_penalty", "--flip", "0.3"]
    assert main(args) == 0
    pairs = rows(out)
    assert len(pairs) >= 10
    for r in pairs:  # length_penalty prefers the shorter completion; a flipped pair has the longer one chosen
        shorter = len(str(r["chosen"])) < len(str(r["rejected"]))
        assert shorter != r["flipped"], r
    assert 0 < sum(bool(r["flipped"]) for r in pairs) < len(pairs)
    capsys.readouterr()
    assert main(args) == 0  # every prompt was answered: nothing new
    assert "0 new pairs" in capsys.readouterr().out and len(rows(out)) == len(pairs)


def test_more_samples_compare_every_two_different_completions_once(tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    def judged(samples: int) -> list[dict[str, object]]:
        out = tmp_path / f"judged{samples}.jsonl"
        assert main(["label", str(tiny_llm), "--prompts", "addition", "--size", "40", "--out", str(out),
                     "--max-new-tokens", "4", "--judge", "length_penalty", "--flip", "0.3", "--samples",
                     str(samples)]) == 0
        return rows(out)

    two, six = judged(2), judged(6)
    assert len(two) == len({r["prompt"] for r in two})  # two samples: at most one pair per prompt
    assert len(six) > len({r["prompt"] for r in six})  # six: several pairs of one prompt
    assert len(six) > 2 * len(two)
    comparisons = [(r["prompt"], frozenset((str(r["chosen"]).strip(), str(r["rejected"]).strip()))) for r in six]
    assert len(set(comparisons)) == len(comparisons)  # each two completions are compared once
    for r in six:
        shorter = len(str(r["chosen"])) < len(str(r["rejected"]))
        assert shorter != r["flipped"], r
    assert 0 < sum(bool(r["flipped"]) for r in six) < len(six)
    capsys.readouterr()
    assert main(["label", str(tiny_llm), "--prompts", "addition", "--size", "40", "--out",
                 str(tmp_path / "judged6.jsonl"), "--judge", "length_penalty", "--samples", "6"]) == 0
    assert "0 new pairs" in capsys.readouterr().out  # one prompt, one question: its pairs were all written


def test_samples_without_a_judge_exits_2(tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["label", str(tiny_llm), "--prompts", "addition", "--out", str(tmp_path / "p.jsonl"), "--samples", "4"])
    assert code == 2 and "--samples compares more than two completions per prompt" in capsys.readouterr().err


def test_flip_without_a_judge_exits_2(tiny_llm: Path, tmp_path: Path,  # noqa: F811
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["label", str(tiny_llm), "--prompts", "addition", "--out", str(tmp_path / "p.jsonl"), "--flip", "0.2"])
    assert code == 2 and "--flip reverses a share of a judge's labels: it needs --judge SPEC" in capsys.readouterr().err
