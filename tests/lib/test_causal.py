"""The sft causal-LM pieces on the tiny model, CPU: packing without contamination, loss, accumulation, resume."""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import polars as pl
import pytest
import torch

from tunebuild import causal, chat, loop
from tunebuild.errors import UserError
from tunebuild.params import (ChatTrainParams, DataParams, ForgetParams, LaunchParams, LoraParams, ModelParams,
                              TaskParams, TrainParams)
from tunebuild.tasks import sft
from stages.train import Params
from tests.lib.test_chat import TOK

SINGLE = LaunchParams(processes=1, backend="gloo", strategy="ddp")
TINY = ModelParams(name="tiny", path="models/tiny-chat", license="apache-2.0", pooling=None)
LORA = LoraParams(r=8, alpha=16, dropout=0.0, target_modules=["all-linear"])
TINY = ModelParams(name="tiny", path="models/tiny-chat", license="apache-2.0", dtype="float32", attn_implementation="sdpa")
LORA = LoraParams(r=8, alpha=16, dropout=0.0, target_modules=["all-linear"], quantize=None)


def examples(n: int) -> tuple[list[list[int]], list[list[int]]]:
    pairs = pl.read_csv("data/raw_chat/email/pairs.csv").head(n)
    convs = [chat.conversation("prompt_completion", p, c) for p, c in pairs.iter_rows()]
    rows, _ = chat.encode(TOK, chat.TEMPLATES["chatml"], convs, 512, "drop")
    return [r[1] for r in rows], [r[2] for r in rows]


def tp(**kw) -> TrainParams:
    c = {"grad_accum": 1, "packing": True, "pack_length": 256, "checkpoint_every": 0, "merge": False}
    c |= {k: kw.pop(k) for k in list(kw) if k in c}
    base = {"mode": "full", "lr": 2e-3, "epochs": 1, "max_steps": -1, "batch_size": 2, "weight_decay": 0.0,
            "warmup_ratio": 0.0, "seed": 0, "patience": None, "frozen_layers": None, "head_init": None, "lora": None,
            "chat": ChatTrainParams(**c), "preference": None, "gradient_checkpointing": False}
    return TrainParams(**(base | kw))


@pytest.fixture(autouse=True)
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("train_mode", [False, True])
def test_packed_loss_equals_unpacked_loss(lora, train_mode):
    """Three examples per packed row give the same loss as one per row: no attention across examples."""
    model = causal.load_base(TINY)
    if lora:
        model = causal.with_lora(model, LORA)
    model.train(train_mode)
    ids, labels = examples(6)
    packed = causal.make_batch(ids, labels, [[0, 1, 2], [3, 4, 5]], pad_id=0)
    single = causal.make_batch(ids, labels, [[i] for i in range(6)], pad_id=0)
    with torch.no_grad():
        (a, n_a), (b, n_b) = causal.completion_loss(model, packed), causal.completion_loss(model, single)
    assert n_a == n_b == sum(sum(x != chat.IGNORE for x in lab[1:]) for lab in labels)
    assert torch.allclose(a, b, rtol=1e-5), (a.item(), b.item())
    # the same rows with positions that do not restart let examples see each other: the loss changes
    contaminated = dict(packed, position_ids=torch.arange(packed["input_ids"].shape[1]).expand_as(packed["input_ids"]))
    with torch.no_grad():
        c, _ = causal.completion_loss(model, contaminated)
    assert not torch.allclose(a, c, rtol=1e-3)


def test_packed_forward_of_the_whole_model_matches_too_with_cache_off():
    """The full model (logits of every position) agrees packed vs unpacked when use_cache=False, in eval mode."""
    model = causal.load_base(TINY).eval()
    ids, labels = examples(2)
    packed = causal.make_batch(ids, labels, [[0, 1]], pad_id=0)
    with torch.no_grad():
        both = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits
        first = model(input_ids=torch.tensor([ids[0]]), use_cache=False).logits
    assert torch.allclose(both[0, :len(ids[0])], first[0], atol=1e-5)


def test_random_init_is_seeded_and_weights_only_from_safetensors(tmp_path):
    a, b = causal.load_base(TINY), causal.load_base(TINY)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    a.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "x.bin")
    with pytest.raises(UserError, match="pickle"):
        causal.load_base(ModelParams(name="m", path=str(tmp_path), license="x", dtype="float32", attn_implementation="sdpa"))


def train_params(p: TrainParams, task: str = "sft") -> Params:
    """The train stage's params around a train section, for the tiny model."""
    return Params(train=p, model=TINY, task=TaskParams(name=task, chat=None), launch=SINGLE,
                  data=DataParams(name="d", purpose=None, raw_dir="r", labels=[], sources=[], forget=ForgetParams([], [])))


def run(p: TrainParams, ids, labels, ckpt, key="k", log=None):
    """task=sft's trainer on these rows (validation: the first two), run by the one loop (tunebuild/loop.py)
    as the train stage runs it, with checkpoints in `ckpt` under the fingerprint `key`."""
    logged = []
    with tempfile.TemporaryDirectory() as d:  # the tokenize stage's files, which the trainer reads
        paths = [Path(d) / "train.parquet", Path(d) / "validation.parquet"]
        for path, n in zip(paths, (len(ids), 2)):
            pl.DataFrame({"input_ids": ids[:n], "labels": labels[:n]}).write_parquet(path)
        t = sft.trainer(train_params(p), paths)
    assert t.checkpoint_every == p.chat.checkpoint_every
    loop.run(t.model, t.steps, t.step, t.validate, p, log or (lambda m, s: logged.append((s, m))),
             t.checkpoint_every, ckpt, key, t.net)
    return t.model, logged


def test_training_lowers_the_loss_lora_and_full():
    ids, labels = examples(16)
    for p in (tp(epochs=3), tp(mode="lora", lora=LORA, lr=1e-2, epochs=3)):
        before = causal.mean_loss(causal.load_base(TINY), ids, labels, 0, 8)
        model, _ = run(p, ids, labels, None)
        assert causal.mean_loss(model, ids, labels, 0, 8) < before - 0.5


def test_gradient_accumulation_matches_one_larger_batch():
    """Two micro-batches accumulated give the gradient (and loss) of one batch holding both."""
    ids, labels = examples(8)
    grads = []
    for micro in ([[[0], [1], [2], [3]]], [[[0], [1]], [[2], [3]]]):
        model = causal.load_base(TINY)
        loss = causal.accumulate(model, [causal.make_batch(ids, labels, rows, 0) for rows in micro])
        grads.append((loss, [q.grad.clone() for q in model.parameters()]))
    (big_loss, big), (acc_loss, acc) = grads
    assert abs(big_loss - acc_loss) < 1e-5
    assert all(torch.allclose(x, y, atol=1e-7) for x, y in zip(big, acc))
    # one micro-batch alone is not the same gradient: the check above can fail
    model = causal.load_base(TINY)
    causal.accumulate(model, [causal.make_batch(ids, labels, [[0], [1]], 0)])
    assert not all(torch.allclose(x, q.grad, atol=1e-7) for x, q in zip(big, model.parameters()))


class Crash(Exception):
    pass


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_crash_then_resume_ends_bitwise_equal(tmp_path, mode):
    """Stopped at the first curve point after step 5 (step 9, epoch 1's validation; checkpoints every 2 steps), a
    rerun resumes from the checkpoint of step 8 and ends with the same bits."""
    ids, labels = examples(16)
    lora = dataclasses.replace(LORA, dropout=0.1)  # dropout draws from the torch RNG: its state is restored too
    p = tp(mode=mode, lora=lora if mode == "lora" else None, batch_size=1, epochs=2, checkpoint_every=2,
           pack_length=160)
    whole, whole_log = run(p, ids, labels, tmp_path / "a")

    def crash_at_5(metrics, step):
        if step >= 5:
            raise Crash
    with pytest.raises(Crash):
        run(p, ids, labels, tmp_path / "b", log=crash_at_5)
    resumed, resumed_log = run(p, ids, labels, tmp_path / "b")
    assert resumed_log == whole_log  # the curve of the steps before the crash is replayed from the checkpoint
    assert all(torch.equal(x, y) for x, y in zip(whole.parameters(), resumed.parameters()))
    # a checkpoint of another run (fingerprint) is ignored: training starts afresh
    other, _ = run(p, ids, labels, tmp_path / "b", key="other")
    assert all(torch.equal(x, y) for x, y in zip(whole.parameters(), other.parameters()))


def test_lora_merge_writes_a_standalone_model(tmp_path):
    """train.chat.merge: the adapter and, in merged/, a model of its own (weights + tokenizer) with the same logits."""
    from transformers import AutoModelForCausalLM

    from stages.train import save

    model = causal.with_lora(causal.load_base(TINY), LORA)
    with torch.no_grad():
        for name, q in model.named_parameters():
            if "lora_B" in name:
                q.normal_(0, 0.05)  # a trained adapter: merging must change the weights
    x = torch.tensor([examples(1)[0][0]])
    with torch.no_grad():
        expected = model(input_ids=x).logits
        plain = causal.load_base(TINY)(input_ids=x).logits
    p = train_params(tp(mode="lora", lora=LORA, merge=True))
    save(model, p, tmp_path / "model")
    assert (tmp_path / "model/adapter_model.safetensors").is_file()
    assert (tmp_path / "model/merged/tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "model/merged", use_safetensors=True)
    with torch.no_grad():
        got = merged(input_ids=x).logits
    assert torch.allclose(got, expected, atol=1e-4) and not torch.allclose(got, plain, atol=1e-3)
