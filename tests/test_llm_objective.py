"""Supervised fine-tuning is the reward-driven objective with the target known (docs/llm.md), checked numerically.

With an exact-match reward r(y) = 1[y = y*], the RL objective is J = E_{y~p}[r(y)] = p(y*), so
grad J = p(y*) * grad log p(y*): the SFT gradient scaled by the hit rate. A REINFORCE estimate with a leave-one-out
baseline (RLOO; GRPO's group mean is the same idea) from sampled completions points the same way as the exact SFT
gradient and has the predicted size -- but needs thousands of samples for what SFT gets from one forward pass.
"""

from __future__ import annotations

from pathlib import Path

import torch
from llm_helpers import tiny_llm  # noqa: F401  (session fixture)

from rlft.llm.config import RewardSpec
from rlft.llm.rewards import resolve_reward


def completion_logp(model: torch.nn.Module, prompt: list[int], completions: torch.Tensor) -> torch.Tensor:
    """log p(completion | prompt) for each row of ``completions`` (N, L)."""
    ids = torch.cat([torch.tensor(prompt).expand(len(completions), -1), completions], dim=1)
    logits = model(input_ids=ids).logits[:, len(prompt) - 1:-1]
    return torch.log_softmax(logits, -1).gather(-1, completions.unsqueeze(-1)).squeeze(-1).sum(-1)


@torch.no_grad()
def sample(model: torch.nn.Module, prompt: list[int], n: int, length: int) -> torch.Tensor:
    ids = torch.tensor(prompt).expand(n, -1)
    for _ in range(length):
        probs = torch.softmax(model(input_ids=ids).logits[:, -1], -1)
        ids = torch.cat([ids, torch.multinomial(probs, 1)], dim=1)
    return ids[:, len(prompt):]


def flat_grad(model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_exact_match_rl_gradient_is_the_sft_gradient_scaled_by_the_hit_rate(tiny_llm: Path) -> None:  # noqa: F811
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_llm)
    model = AutoModelForCausalLM.from_pretrained(tiny_llm)
    prompt = tok("12+34=", add_special_tokens=False)["input_ids"]
    target = torch.tensor([tok("46", add_special_tokens=False)["input_ids"]])
    # A few supervised steps so that p(y*) is neither ~0 nor ~1 (a random tiny model gives y* about 1/V^2).
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    while completion_logp(model, prompt, target).exp().item() < 0.2:
        opt.zero_grad()
        (-completion_logp(model, prompt, target)).sum().backward()
        opt.step()
    p_star = completion_logp(model, prompt, target).exp().item()

    g_sft = flat_grad(model, completion_logp(model, prompt, target).sum())  # grad log p(y*): the SFT direction

    n = 4000
    ys = sample(model, prompt, n, target.shape[1])
    # The reward is rlft's own exact-match reward plugin, exactly as the rl stage calls it (TRL's contract).
    exact_match = resolve_reward(RewardSpec(fn="exact_match"))
    reward = torch.tensor(exact_match(["12+34="] * n, tok.batch_decode(ys, skip_special_tokens=True),
                                      answer=["46"] * n))
    baseline = (reward.sum() - reward) / (n - 1)  # leave-one-out
    g_rl = flat_grad(model, ((reward - baseline) * completion_logp(model, prompt, ys)).mean())

    cosine = torch.nn.functional.cosine_similarity(g_rl, g_sft, dim=0).item()
    ratio = (g_rl.norm() / (p_star * g_sft.norm())).item()
    assert abs(reward.mean().item() - p_star) < 0.03  # the samples hit y* at rate p(y*)
    assert cosine > 0.9, f"RL and SFT gradients disagree (cosine {cosine:.3f})"
    assert 0.8 < ratio < 1.25, f"|g_rl| / (p* |g_sft|) = {ratio:.3f}, expected about 1"
