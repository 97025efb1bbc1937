"""Config sections of the LLM stages (``build``, ``pretrain``, ``sft``, ``rl``, ``llm_eval``; RLHF: ``label``,
``reward_model``, ``dpo``).

Each is a plain dataclass with a docstring under every field; the pipeline config holds one field
per section, so ``--set sft.epochs=3`` works like any other key. The model a stage starts from is the model the
previous LLM stage produced, else ``model.name`` (a hub id or a local folder). A leaf module: it imports only the core.

Example::

    stages: [build, pretrain, sft, rl, llm_eval]
    rl: {algorithm: grpo, rewards: [{fn: exact_match, weight: 1.0}]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlft.core.config import param
from rlft.core.errors import ConfigError
from rlft.core.tuning import TuningConfig


@dataclass
class LLMDataConfig:
    """Where a stage's examples come from, and which columns hold what."""

    source: str = "addition"
    """`addition` (generated task: prompt `a+b=`, completion the sum; `op` and `prompt_template` change it), or a local
    `.jsonl`/`.json`/`.csv`/`.parquet` file, or a folder written by `datasets.save_to_disk`. Columns may be plain text
    or conversational (TRL's format: `prompt` / `completion` as lists of `{role, content}`, or one `messages` list)."""
    split: str = "train"
    """Generated tasks: `train` or `test` (disjoint sets of problems). Folders holding a DatasetDict: the split."""
    size: int = param(2000, ge=1)
    """Generated tasks: number of examples (drawn with replacement from the split's problems)."""
    wrong_fraction: float = param(0.0, ge=0, le=1)
    """Generated tasks: share of examples whose completion is replaced by a wrong answer (noisy demonstrations)."""
    seed: int = param(0, ge=0)
    """Generated tasks: sampling seed (added to the stage seed)."""
    system: str = ""
    """Chat models: a system message put before every prompt (the prompt becomes a conversation; a system message
    the data has is replaced). Empty: none, so the chat template's own default applies (SmolLM2's is a 20-token
    "You are a helpful AI assistant ...")."""
    op: Literal["+", "-", "+-"] = "+"
    """Generated tasks: `+` (sums), `-` (differences, may be negative) or `+-` (each example one or the other)."""
    prompt_template: str = "{a}{op}{b}="
    """Generated tasks: how a problem is phrased (`{a}`, `{op}`, `{b}`), e.g. `What is {a}{op}{b}? Answer with the
    number only.` -- an instruction model sees it as the user's message in its chat template."""
    prompt_column: str = "prompt"
    """Column holding the prompt."""
    completion_column: str = "completion"
    """Column holding the reference completion (SFT target, exact-match answer)."""
    text_column: str = "text"
    """`pretrain`: column holding raw text. When absent, prompt + completion are joined."""
    limit: int = param(0, ge=0)
    """Use only the first N rows of a file (0: all)."""

    def validate(self) -> None:
        try:
            self.prompt_template.format(a=1, op="+", b=2)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"prompt_template '{self.prompt_template}' must use only {{a}}, {{op}} and {{b}} "
                             f"({type(e).__name__}: {e}).") from e


@dataclass
class RewardSpec:
    """One reward term: a function (built-in name, `pkg.module:fn`, `file.py:fn`) or a reward model, and its weight."""

    fn: str = ""
    """Built-in (`exact_match`, `regex_match`, `length_penalty`), `pkg.module:fn` or `path/to/file.py:fn`.
    Contract (TRL's): `fn(prompts, completions, **columns) -> list[float | None]`."""
    model: str = ""
    """Instead of `fn`: a sequence-classification reward model (local folder or hub id); its logit is the reward."""
    weight: float = 1.0
    """Weight of this term in the summed reward."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments bound to the function (e.g. `pattern` for `regex_match`, `column` for `exact_match`)."""

    def validate(self) -> None:
        if bool(self.fn) == bool(self.model):
            raise ValueError("a reward needs exactly one of `fn` (a function spec) or `model` (a reward model path).")



@dataclass
class LLMEvalConfig:
    """Held-out evaluation of an LLM: the ``llm_eval`` stage's section, and the ``eval`` key of every LLM training
    stage (run before and after it trains)."""

    data: LLMDataConfig = field(default_factory=lambda: LLMDataConfig(split="test", size=200, seed=1))
    """Held-out prompts with reference completions."""
    enabled: bool = True
    """In a training stage's `eval`: evaluate before and after it trains (the `llm_eval` stage always evaluates)."""
    max_new_tokens: int = param(16, ge=1)
    """Longest generated completion."""
    sampled: bool = True
    """Also measure sampled exact match (a second generation pass; off: the greedy completions give the reward)."""
    temperature: float = param(1.0, gt=0)
    """Temperature of the sampled evaluation (greedy is always measured too)."""
    batch_size: int = param(200, ge=1)
    """Prompts generated at once."""
    seed: int = param(1234, ge=0)
    """Seed of the sampled evaluation (the same before and after a stage, so the figures are comparable)."""
    rewards: list[RewardSpec] = field(default_factory=list)
    """Reward functions whose mean over the sampled completions is reported as `reward` (functions only; a training
    stage's `rl.rewards` are used for its own before/after figures)."""


@dataclass
class BuildConfig:
    """Settings of the ``build`` stage: a tokenizer trained on a corpus, and a tiny Qwen2-style causal LM."""

    data: LLMDataConfig = field(default_factory=lambda: LLMDataConfig(size=5000))
    """Corpus the tokenizer vocabulary is built from."""
    level: Literal["char", "word"] = "char"
    """`char`: one token per character; `word`: one token per whitespace-separated word."""
    vocab_size: int = param(1000, ge=8)
    """`word` level: maximum vocabulary size (most frequent words)."""
    hidden_size: int = param(64, ge=8)
    """Model width."""
    num_layers: int = param(2, ge=1)
    """Transformer blocks."""
    num_heads: int = param(4, ge=1)
    """Attention heads (must divide hidden_size)."""
    num_kv_heads: int = param(2, ge=1)
    """Key/value heads (grouped-query attention; must divide num_heads)."""
    intermediate_size: int = param(256, ge=8)
    """MLP width."""
    max_length: int = param(128, ge=8)
    """Longest sequence (positions)."""


@dataclass
class PretrainConfig:
    """Settings of the ``pretrain`` stage: self-supervised causal-LM training on a text corpus."""

    data: LLMDataConfig = field(default_factory=lambda: LLMDataConfig(size=20000))
    """The corpus (the `text_column`, or prompt + completion joined)."""
    block_size: int = param(64, ge=4)
    """Longest training sequence, in tokens (longer texts are cut into pieces of this size)."""
    pack: bool = False
    """Join texts (each ending with EOS) into full blocks: efficient for long documents. False keeps one text per
    sequence, so every text starts at position 0 as prompts do at generation (best for short examples)."""
    epochs: float = param(1.0, gt=0)
    """Passes over the corpus."""
    max_steps: int = param(-1, ge=-1)
    """Stop after this many optimizer steps (-1: use `epochs`)."""
    batch_size: int = param(32, ge=1)
    """Blocks per optimizer step (per process)."""
    lr: float = param(1e-3, gt=0)
    """AdamW peak learning rate (linear warm-up then cosine decay)."""
    warmup_ratio: float = param(0.05, ge=0, lt=1)
    """Share of steps spent warming up the learning rate."""
    save_steps: int = param(200, ge=1)
    """Write a resumable checkpoint every N steps (the newest `keep_checkpoints` are kept)."""
    logging_steps: int = param(20, ge=1)
    """Log train/loss every N steps."""
    eval: LLMEvalConfig = field(default_factory=LLMEvalConfig)
    """Held-out evaluation before and after this stage trains."""


@dataclass
class SFTConfig:
    """Settings of the ``sft`` stage: TRL `SFTTrainer` on prompt/completion demonstrations."""

    data: LLMDataConfig = field(default_factory=LLMDataConfig)
    """The demonstrations."""
    epochs: float = param(1.0, gt=0)
    """Passes over the demonstrations."""
    max_steps: int = param(-1, ge=-1)
    """Stop after this many optimizer steps (-1: use `epochs`)."""
    batch_size: int = param(32, ge=1)
    """Examples per optimizer step (per process)."""
    lr: float = param(5e-4, gt=0)
    """AdamW peak learning rate."""
    max_length: int = param(128, ge=4)
    """Truncate prompt + completion to this many tokens."""
    completion_only_loss: bool = True
    """Train on the completion tokens only (the prompt is context, not target)."""
    save_steps: int = param(200, ge=1)
    """Write a resumable checkpoint every N steps."""
    logging_steps: int = param(20, ge=1)
    """Log train/loss every N steps."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """Which parameters train: `full`, `freeze` (embeddings and early blocks frozen) or `lora` (PEFT adapter)."""
    eval: LLMEvalConfig = field(default_factory=LLMEvalConfig)
    """Held-out evaluation before and after this stage trains."""



@dataclass
class RLConfig:
    """Settings of the ``rl`` stage: reward-driven fine-tuning with TRL's GRPO or RLOO."""

    algorithm: Literal["grpo", "rloo"] = "grpo"
    """`grpo` (group-normalised advantages, TRL GRPOTrainer) or `rloo` (leave-one-out baseline, TRL RLOOTrainer)."""
    data: LLMDataConfig = field(default_factory=LLMDataConfig)
    """The prompts (other columns are passed to the reward functions as keyword arguments)."""
    rewards: list[RewardSpec] = field(default_factory=lambda: [RewardSpec(fn="exact_match")])
    """Reward terms, summed with their weights."""
    max_steps: int = param(100, ge=1)
    """Optimizer steps."""
    batch_size: int = param(16, ge=1)
    """Completions per optimizer step (per process); must be divisible by `num_generations`."""
    num_generations: int = param(8, ge=2)
    """Completions sampled per prompt (the group the advantage is computed within)."""
    max_completion_length: int = param(16, ge=1)
    """Longest completion, in tokens."""
    temperature: float = param(1.0, gt=0)
    """Sampling temperature of the rollouts."""
    beta: float = param(0.0, ge=0)
    """KL penalty toward the starting model (0: no reference model is kept)."""
    lr: float = param(1e-5, gt=0)
    """AdamW learning rate."""
    num_iterations: int = param(1, ge=1)
    """Optimisation passes per batch of generations (>1 reuses samples, clipped like PPO)."""
    use_vllm: bool = False
    """Generate with vLLM (TRL's switch; needs vLLM installed and a GPU)."""
    play_games: int = param(0, ge=0)
    """Game envs only: before training, the starting model plays this many games against each opponent of the
    `game_outcome` reward (both seats, half greedy and half sampled), and every position where it moved joins the
    prompts `play_repeat` times: the states its own play leads to, where its mistakes happen (0: off)."""
    play_repeat: int = param(1, ge=1)
    """Copies of each position from `play_games` in the prompts (weights them against `data`)."""
    save_steps: int = param(50, ge=1)
    """Write a resumable checkpoint every N steps."""
    logging_steps: int = param(5, ge=1)
    """Log reward, KL and completion length every N steps."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """Which parameters train: `full`, `freeze` (embeddings and early blocks frozen) or `lora` (PEFT adapter)."""
    eval: LLMEvalConfig = field(default_factory=LLMEvalConfig)
    """Held-out evaluation before and after this stage trains."""
    true_score: TrueScoreConfig = field(default_factory=lambda: TrueScoreConfig())
    """Over-optimisation watch: a held-out *true* score logged during training (off while `rewards` is empty)."""

    def check_pipeline(self, name: str, earlier: list[str], kinds: dict[str, str]) -> None:
        """A reward model named by stage (`{model: reward_model}`) must be a `reward_model` stage that runs earlier."""
        for spec in self.rewards:
            if spec.model and is_stage_reference(spec.model):
                if kinds.get(spec.model) == "reward_model" and spec.model in earlier:
                    continue
                trained = [s for s in earlier if kinds.get(s) == "reward_model"] or ["none"]
                raise ConfigError(
                    f"{name}.rewards names the reward model '{spec.model}', which is no `reward_model` stage that "
                    f"runs before '{name}' (reward-model stages before it: {', '.join(trained)}) and no local folder. "
                    f"Add '{spec.model}' (kind reward_model) to `stages` before '{name}', or give the path of a "
                    "reward model folder.")

    def validate(self) -> None:
        if self.batch_size % self.num_generations:
            raise ValueError(f"rl.batch_size ({self.batch_size}) must be divisible by rl.num_generations "
                             f"({self.num_generations}): every prompt needs a full group of completions.")




def is_stage_reference(model: str) -> bool:
    """A reward `model:` that names a pipeline stage: a bare stage-like name that is not an existing folder."""
    return bool(re.fullmatch(r"[a-z][a-z0-9_]*", model)) and not Path(model).exists()


@dataclass
class TrueScoreConfig:
    """The held-out *true* score of an ``rl`` stage trained against a learned reward (the "proxy rises, true score
    falls" curve): every ``every`` steps the model samples the held-out prompts of ``eval.data``."""

    rewards: list[RewardSpec] = field(default_factory=list)
    """Reward functions that define the true score (the rl stage never optimises them); empty: off."""
    every: int = param(25, ge=1)
    """Score every N optimizer steps (and at the end); logged as `true/reward`, `true/sampled_em`, `true/greedy_em`."""


@dataclass
class PreferenceDataConfig:
    """Preference pairs in TRL's format (`prompt`, `chosen`, `rejected`; plain text or conversational messages)."""

    source: str = "label"
    """A `.jsonl`/`.json`/`.csv`/`.parquet` file, a `datasets.save_to_disk` folder, or the pairs a `label` stage of
    this pipeline wrote: its stage name (`label`), or `<name>:test` for its held-out pairs."""
    split: str = "train"
    """Folders holding a DatasetDict: the split."""
    prompt_column: str = "prompt"
    """Column holding the prompt ('' when `chosen` and `rejected` hold the whole texts)."""
    chosen_column: str = "chosen"
    """Column holding the preferred completion."""
    rejected_column: str = "rejected"
    """Column holding the other completion."""
    limit: int = param(0, ge=0)
    """Use only the first N pairs (0: all)."""


@dataclass
class LabelConfig:
    """Settings of the ``label`` stage: AI feedback. The current model samples `samples` completions per prompt, a
    judge (a reward function or a reward model folder) orders every two by score (ties dropped), and a `flip` share
    of the pairs is reversed."""

    prompts: LLMDataConfig = field(default_factory=lambda: LLMDataConfig(size=2000, seed=40))
    """Prompts to label (other columns reach the judge as keyword arguments, e.g. `answer` for `exact_match`)."""
    test_prompts: LLMDataConfig = field(default_factory=lambda: LLMDataConfig(split="test", size=200, seed=41))
    """Held-out prompts, labelled the same way but never flipped: the pairs `<stage>:test` (pairwise accuracy)."""
    held_out: bool = True
    """Also label `test_prompts` (off: no `<stage>:test` pairs)."""
    judge: RewardSpec = field(default_factory=lambda: RewardSpec(fn="exact_match"))
    """Scores each completion: `fn` (a reward function) or `model` (a reward model folder)."""
    flip: float = param(0.0, ge=0, le=1)
    """Share of the training pairs whose order is reversed (label noise, to mimic disagreeing people)."""
    samples: int = param(2, ge=2)
    """Completions sampled per prompt; the judge compares every two different ones (2: one pair per prompt)."""
    max_new_tokens: int = param(16, ge=1)
    """Longest sampled completion."""
    temperature: float = param(1.0, gt=0)
    """Sampling temperature of the sampled completions."""
    batch_size: int = param(256, ge=1)
    """Prompts generated at once."""


@dataclass
class PreferenceEvalConfig:
    """Held-out pairwise accuracy of a reward model: the share of pairs whose `chosen` scores above `rejected`."""

    data: PreferenceDataConfig = field(default_factory=lambda: PreferenceDataConfig(source="label:test"))
    """Held-out pairs (by default the unflipped held-out pairs of a `label` stage named `label`)."""
    enabled: bool = True
    """Evaluate before and after training."""
    batch_size: int = param(128, ge=1)
    """Texts scored at once."""


@dataclass
class RewardModelConfig:
    """Settings of the ``reward_model`` stage: TRL `RewardTrainer` (Bradley-Terry loss) on preference pairs."""

    data: PreferenceDataConfig = field(default_factory=PreferenceDataConfig)
    """The training pairs."""
    base: str = ""
    """What the reward model starts from: '' the run's current LLM (else `model.name`), or a folder / hub id. A
    sequence-classification head (one output) is put on its trunk."""
    epochs: float = param(1.0, gt=0)
    """Passes over the pairs."""
    max_steps: int = param(-1, ge=-1)
    """Stop after this many optimizer steps (-1: use `epochs`)."""
    batch_size: int = param(32, ge=1)
    """Pairs per optimizer step (per process)."""
    lr: float = param(1e-4, gt=0)
    """AdamW learning rate."""
    max_length: int = param(128, ge=4)
    """Pairs whose prompt + completion is longer (in tokens) are dropped."""
    center_rewards: float = param(0.0, ge=0)
    """Coefficient of TRL's penalty on the mean reward squared (keeps scores near 0; 0: off)."""
    save_steps: int = param(100, ge=1)
    """Write a resumable checkpoint every N steps."""
    logging_steps: int = param(10, ge=1)
    """Log train/loss and train/accuracy every N steps."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """Which parameters train: `full`, `freeze` (embeddings and early blocks frozen) or `lora`; the head always."""
    eval: PreferenceEvalConfig = field(default_factory=PreferenceEvalConfig)
    """Held-out pairwise accuracy before and after training."""


DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "apo_down")


@dataclass
class DPOConfig:
    """Settings of the ``dpo`` stage: TRL `DPOTrainer` -- the preferences optimised directly, no reward model."""

    data: PreferenceDataConfig = field(default_factory=PreferenceDataConfig)
    """The training pairs."""
    beta: float = param(0.1, gt=0)
    """Strength of the implicit KL leash toward the reference (the starting model)."""
    loss_type: str = "sigmoid"
    """TRL's loss: `sigmoid` (DPO), `ipo`, `hinge`, `robust` (noisy labels), and the others TRL names."""
    label_smoothing: float = param(0.0, ge=0, lt=0.5)
    """Assumed share of flipped labels (`robust` / conservative DPO)."""
    epochs: float = param(1.0, gt=0)
    """Passes over the pairs."""
    max_steps: int = param(-1, ge=-1)
    """Stop after this many optimizer steps (-1: use `epochs`)."""
    batch_size: int = param(32, ge=1)
    """Pairs per optimizer step (per process)."""
    lr: float = param(1e-5, gt=0)
    """AdamW learning rate."""
    max_length: int = param(128, ge=4)
    """Truncate prompt + completion to this many tokens."""
    save_steps: int = param(100, ge=1)
    """Write a resumable checkpoint every N steps."""
    logging_steps: int = param(10, ge=1)
    """Log loss, reward margins and accuracies every N steps."""
    tuning: TuningConfig = field(default_factory=TuningConfig)
    """`full` (the reference is a frozen copy of the start), `freeze`, or `lora` (the reference is the adapter off)."""
    eval: LLMEvalConfig = field(default_factory=LLMEvalConfig)
    """Held-out evaluation before and after this stage trains."""

    def validate(self) -> None:
        if self.loss_type not in DPO_LOSSES:
            raise ValueError(f"dpo.loss_type '{self.loss_type}' is not one of {', '.join(DPO_LOSSES)}.")
