"""Game commands and the game pipeline: `rlft play` driven by scripted stdin, `arena`, `render`, `record` of both
seats and behaviour cloning from it, and a tiny end-to-end `rlft train` on tic-tac-toe."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import rlft
from rlft.cli.main import main
from rlft.core.envs import resolve_env
from rlft.policy.datasets import load_dataset, load_transitions
from rlft.policy.games.arena import evaluate_game


def test_play_with_scripted_stdin_including_bad_input(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    # The human moves first against `perfect`; junk, an out-of-range number and an occupied square are re-asked.
    moves = ["hello", "42", "4", "4", "0", "2", "6", "3", "5", "1", "7", "8"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(moves) + "\n"))
    save = tmp_path / "human"
    assert main(["play", "perfect", "--env", "tictactoe", "--seat", "0", "--save", str(save)]) == 0
    out = capsys.readouterr().out
    assert "'hello' is not a move" in out
    assert "42 is not legal here" in out
    assert "4 is not legal here" in out  # the second 4: square taken
    assert "You lose." in out or "Draw." in out  # nobody beats perfect play
    assert "your move [0, 1, 2, 3, 4, 5, 6, 7, 8]" in out  # legal moves are shown
    data = load_dataset(save)
    players = {m["player"] for m in data.storage.get_episode_metadata(range(data.total_episodes))}
    assert players == {"player_1", "player_2"}


def test_play_ctrl_c_and_end_of_input_exit_cleanly(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("3\n"))  # input ends mid-game
    assert main(["play", "random", "--env", "connect_four", "--seat", "1"]) == 0
    out = capsys.readouterr().out
    assert "bye." in out and "| . . ." in out  # the board was drawn

    class Interrupting(io.StringIO):
        def readline(self, *args: object) -> str:
            raise KeyboardInterrupt

    monkeypatch.setattr("sys.stdin", Interrupting())
    assert main(["play", "random", "--env", "tictactoe"]) == 0
    assert "bye." in capsys.readouterr().out


def test_arena_prints_win_matrix_and_elo(capsys: pytest.CaptureFixture) -> None:
    assert main(["arena", "alphabeta:2", "greedy", "random", "--env", "connect_four", "--episodes", "10", "-q",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    elo = result["elo"]
    assert elo["alphabeta:2"] > elo["greedy"] > elo["random"]
    assert result["win_matrix"]["alphabeta:2"]["random"] == 1.0


def test_render_writes_a_gif(tmp_path: Path) -> None:
    out = tmp_path / "game.gif"
    assert main(["render", "alphabeta:1", "random", "--env", "tictactoe", "--out", str(out)]) == 0
    import imageio.v2 as imageio

    frames = imageio.mimread(out)
    assert len(frames) >= 5 and frames[0].ndim == 3


def test_record_both_seats_then_behaviour_clone(tmp_path: Path) -> None:
    from rlft.policy.stages.record import record

    out = tmp_path / "ttt"
    result = record("tictactoe", "perfect:0.2", 1000, out, seed=0)
    assert result["episodes"] == 1000 and result["steps"] > 5000
    data = load_dataset(out)
    meta = list(data.storage.get_episode_metadata(range(data.total_episodes)))
    assert data.total_episodes == 2000  # one episode per seat per game
    assert {m["player"] for m in meta} == {"player_1", "player_2"}
    assert {m["result"] for m in meta} <= {"win", "draw", "loss"}
    by_game: dict[int, list[str]] = {}
    for m in meta:
        by_game.setdefault(m["game"], []).append(m["result"])
    assert all(sorted(r) in (["draw", "draw"], ["loss", "win"]) for r in by_game.values())
    transitions = load_transitions(out)
    assert transitions.action_masks is not None
    assert transitions.action_masks[np.arange(len(transitions)), transitions.actions].all()

    # Behaviour cloning from the recording gives a player that beats random (random itself wins ~0.3 of games).
    run_dir = tmp_path / "bc"
    args = ["imitate", "--env", "tictactoe", "--dataset", str(out), "--run-dir", str(run_dir), "--epochs", "40",
            "-q", "--set", "imitate.policy.net_arch=[128,128]", "--set", "imitate.policy.activation=relu",
            "--set", "imitate.critic_warmup_epochs=1"]
    assert main(args) == 0
    agent = rlft.load_agent(run_dir)
    score = evaluate_game(agent, resolve_env("tictactoe"), {}, ["random"], 100, seed=1)["random"].to_json()
    assert score["win"] >= 0.6 and score["loss"] <= 0.15


def test_tiny_train_on_tictactoe_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    sets = {"record.episodes": 100, "imitate.epochs": 2, "imitate.critic_warmup_epochs": 1,
            "finetune.total_timesteps": 1024, "finetune.n_envs": 2, "finetune.n_steps": 128,
            "finetune.eval_every": 512, "finetune.eval_episodes": 4, "finetune.self_play.snapshot_every": 256,
            "finetune.self_play.elo_games": 4, "eval.episodes": 4}
    args = ["train", "configs/tictactoe.yaml", "--run-dir", str(run_dir), "-q"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "imitate" in out and "finetune" in out and "perfect" in out  # BC and final side by side
    assert list((run_dir / "tb" / "finetune").glob("events.out.tfevents.*"))
    results = json.loads((run_dir / "results.json").read_text())
    history = results["finetune"]["details"]["history"]
    assert "eval/win_rate_vs_perfect" in history[-1][1] and "eval/elo" in history[-1][1]
    # The acceptance path: the real PettingZoo env, one seat played by rlft.load_agent.
    agent = rlft.load_agent(run_dir)
    env = resolve_env("tictactoe").make()
    env.reset(seed=0)
    obs, *_ = env.last()
    action = agent.act(obs["observation"], action_mask=obs["action_mask"], deterministic=True)
    assert obs["action_mask"][action] == 1
