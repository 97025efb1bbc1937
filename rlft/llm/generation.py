"""Generation: complete a batch of prompts with a causal LM, greedily or by sampling with a fixed seed.

A prompt is plain text or a conversation (TRL's list of ``{"role", "content"}`` messages). When the tokenizer has a
chat template, both are rendered with it (a plain-text prompt as the user's message, then the assistant's turn is
opened), so an instruction model is asked the way it was trained; the completion is the assistant's reply.

Example::

    generate(model, tokenizer, ["12+34="], max_new_tokens=4)  # ["46"]
"""

from __future__ import annotations

from typing import Any

import torch


def render_prompt(tokenizer: Any, prompt: Any) -> str:
    """The text the model continues: ``prompt`` through the tokenizer's chat template when it has one."""
    if not getattr(tokenizer, "chat_template", None):
        if isinstance(prompt, list):
            return "".join(str(m.get("content", "")) for m in prompt)
        return str(prompt)
    messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: list[Any], *, max_new_tokens: int = 16, sample: bool = False,
             temperature: float = 1.0, batch_size: int = 64, seed: int | None = None) -> list[str]:
    """Complete ``prompts`` (greedy, or sampled at ``temperature``); returns the decoded new text only."""
    prompts = [render_prompt(tokenizer, p) for p in prompts]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator_state = torch.get_rng_state()
    if seed is not None:
        torch.manual_seed(seed)
    outs: list[str] = []
    tokenizer.padding_side = "left"
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        kwargs: dict[str, Any] = {"do_sample": sample, "max_new_tokens": max_new_tokens,
                                  "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
        if sample:
            kwargs.update(temperature=temperature, top_k=0, top_p=1.0)
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        ids = model.generate(**batch, **kwargs)
        new = ids[:, batch["input_ids"].shape[1]:]
        outs += tokenizer.batch_decode(new, skip_special_tokens=True)
    if seed is not None:
        torch.set_rng_state(generator_state)
    model.train(was_training)
    return outs
