"""SFT training speed: tunebuild's causal-LM loop vs TRL's SFTTrainer, same data, shapes, LoRA, length, precision.

Run from the repo root (needs `pip install trl` in the environment; trl is not a tunebuild dependency):
    python bench/bench_sft.py            # CPU: small shapes; with CUDA: SmolLM2-135M and Llama-3.2-1B shapes
    python bench/bench_sft.py --quick    # fewer steps (a smoke run of the harness)
Prints one JSON line per (shape, mode, trainer) and, on a GPU, appends them to bench/results/sft.jsonl.

Data: the chat demo (scripts/make_chat_demo.py) rendered with ChatML and tokenized by the tiny BPE
tokenizer (ids < 909 are valid in every shape's vocabulary); the loss is on the assistant turns only
for every trainer. Models: random init from a config of each shape. Each trainer runs `warmup`
steps, then `steps` timed steps; tokens/s counts the real (non-padding) tokens of the timed steps.

Trainers, one optimizer step = `batch` rows of at most `seq` tokens:
  ours          rows packed without attention across examples (position_ids restarts), head on the
                target positions only, fused AdamW on GPU, bf16 autocast on GPU (fp32 on CPU)
  trl_nopack    SFTTrainer, one example per row (padded), completion_only_loss
  trl_wrapped   SFTTrainer, packing_strategy="wrapped" (rows cut anywhere; examples attend across)
  trl_bfd       SFTTrainer, packing_strategy="bfd" (TRL's contamination-free packing; padding_free)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tunebuild import causal, chat  # noqa: E402 (after the sys.path line)

SHAPES = {  # LlamaConfig kwargs (random init)
    "tiny-cpu": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=True),
    "SmolLM2-135M": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0),
    "Llama-3.2-1B": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0),
}
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


@dataclasses.dataclass
class Setup:
    shape: str
    mode: str        # lora | full
    seq: int
    batch: int       # rows per optimizer step
    steps: int
    warmup: int
    cuda: bool


def examples() -> tuple[list[list[int]], list[list[int]]]:
    """The chat demo as (input_ids, labels), tokenized like the pipeline does."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained("models/tiny-chat")
    pairs = pl.read_csv("data/raw_chat/email/pairs.csv")
    forms = pl.read_parquet("data/raw_chat/forms/forms.parquet")
    convs = [chat.conversation("prompt_completion", p, c) for p, c in pairs.iter_rows()]
    convs += [chat.conversation("instruction", i, o, x) for i, x, o in forms.iter_rows()]
    rows, _ = chat.encode(tok, chat.TEMPLATES["chatml"], [c for c in convs if c[1]["content"].strip()], 4096, "drop")
    return [r[1] for r in rows], [r[2] for r in rows]


def build(s: Setup):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[s.shape], max_position_embeddings=max(s.seq, 512), use_cache=False,
                         attn_implementation="sdpa", pad_token_id=0)
    model = LlamaForCausalLM(config).to("cuda" if s.cuda else "cpu")
    if s.mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(**LORA))
    return model


def stream(ids, labels, n_rows: int, seq: int, packing: bool):
    """Enough example indices (cycling through the data) for n_rows rows."""
    order, rows = [], []
    while len(rows) < n_rows:
        order += list(range(len(ids)))
        rows = causal.rows_of([len(x) for x in ids], order, packing, seq)
    return rows[:n_rows]


def measure(step, n_steps: int, warmup: int, cuda: bool) -> tuple[float, int]:
    """Seconds for n_steps timed calls of step() (returning real tokens) after warmup calls."""
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    tokens, start = 0, time.perf_counter()
    for _ in range(n_steps):
        tokens += step()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, tokens


def run_ours(s: Setup, ids, labels) -> dict:
    model = build(s)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=s.cuda)
    rows = stream(ids, labels, s.batch * (s.steps + s.warmup), s.seq, packing=True)
    batches = iter([rows[i:i + s.batch] for i in range(0, len(rows), s.batch)])

    def step() -> int:
        rows = next(batches)
        causal.accumulate(model, [causal.make_batch(ids, labels, rows, pad_id=0)])
        opt.step()
        opt.zero_grad(set_to_none=True)
        return sum(len(ids[i]) for row in rows for i in row)

    seconds, tokens = measure(step, s.steps, s.warmup, s.cuda)
    return {"seconds": seconds, "tokens": tokens}


def run_trl(s: Setup, ids, labels, packing: str | None) -> dict:
    from datasets import Dataset
    from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    model = build(s)
    tok = AutoTokenizer.from_pretrained("models/tiny-chat")
    n_examples = s.batch * (s.steps + s.warmup) * (max(1, s.seq // 60) if packing else 1) + s.batch
    index = [i % len(ids) for i in range(n_examples)]
    data = Dataset.from_dict({"input_ids": [ids[i] for i in index],
                              "completion_mask": [[int(x != chat.IGNORE) for x in labels[i]] for i in index]})
    counted = {"tokens": 0, "step": 0, "start": None}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == s.warmup:
                if s.cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                counted["start"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == s.warmup + s.steps:
                if s.cuda:
                    torch.cuda.synchronize()
                counted["seconds"] = time.perf_counter() - counted["start"]

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, per_device_train_batch_size=s.batch, max_length=s.seq,
                           max_steps=s.warmup + s.steps, learning_rate=1e-4, logging_steps=10_000, save_strategy="no",
                           report_to="none", bf16=s.cuda, use_cpu=not s.cuda, completion_only_loss=True,
                           packing=packing is not None, packing_strategy=packing or "bfd",
                           padding_free=packing == "bfd", dataloader_num_workers=0, seed=0,
                           dataset_num_proc=None, disable_tqdm=True, optim="adamw_torch_fused" if s.cuda else "adamw_torch")
        trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tok, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # stdout holds JSON lines only
        collate = trainer.data_collator

        def counting(features):
            batch = collate(features)
            if counted["start"] is not None or trainer.state.global_step >= s.warmup:
                counted["tokens"] += real_tokens(batch)
            return batch

        trainer.data_collator = counting
        trainer.train()
    return {"seconds": counted["seconds"], "tokens": counted["tokens"]}


def real_tokens(batch: dict) -> int:
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    ids, labels = examples()
    if cuda:
        setups = [Setup(shape, mode, 2048, 8, 20, 5, True) for shape in ("SmolLM2-135M", "Llama-3.2-1B")
                  for mode in ("lora", "full")]
    else:
        setups = [Setup("tiny-cpu", mode, 512, 4, 3 if args.quick else 10, 1 if args.quick else 2, False)
                  for mode in ("lora", "full")]
    trainers = {"ours": run_ours, "trl_nopack": lambda s, i, lab: run_trl(s, i, lab, None),
                "trl_wrapped": lambda s, i, lab: run_trl(s, i, lab, "wrapped"),
                "trl_bfd": lambda s, i, lab: run_trl(s, i, lab, "bfd")}
    results = []
    for s in setups:
        for name, fn in trainers.items():
            if name == "trl_bfd" and not cuda:
                continue  # TRL's padding-free packing needs flash attention kernels (GPU)
            r = fn(s, ids, labels)
            line = {"bench": "sft", "trainer": name, "shape": s.shape, "mode": s.mode, "seq": s.seq, "batch": s.batch,
                    "steps": s.steps, "precision": "bf16" if cuda else "fp32", "device": torch.cuda.get_device_name()
                    if cuda else f"cpu x{torch.get_num_threads()}", "tokens_per_s": round(r["tokens"] / r["seconds"], 1),
                    "seconds": round(r["seconds"], 3)}
            if cuda:
                line["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            results.append(line)
            print(json.dumps(line), flush=True)
        ours = next(r for r in results if r["trainer"] == "ours" and r["shape"] == s.shape and r["mode"] == s.mode)
        for r in results:
            if r["shape"] == s.shape and r["mode"] == s.mode and r["trainer"] != "ours":
                print(json.dumps({"bench": "sft_ratio", "shape": s.shape, "mode": s.mode, "vs": r["trainer"],
                                  "ours_over_peer": round(ours["tokens_per_s"] / r["tokens_per_s"], 3)}), flush=True)
    if cuda:
        out = Path("bench/results/sft.jsonl")
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in results)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
