"""DPO pieces on the tiny model, CPU: the loss by hand, answer-only masks, the reference with the adapter
disabled, the starting point from an sft adapter, and a few steps of the loop."""
from __future__ import annotations

import dataclasses
import math

import polars as pl
import pytest
import torch

from tunebuild import causal, chat, dpo, loop
from tunebuild.errors import UserError
from tunebuild.params import ChatParams, PreferenceTrainParams, TaskParams, TokenizeParams
from tunebuild.tasks import preference as task
from stages.tokenize import Params as TokParams
from tests.lib.test_causal import LORA, TINY, tp, train_params
from tests.lib.test_chat import TOK

SYSTEM = {"role": "system", "content": "Answer in JSON."}


@pytest.fixture(autouse=True)
def deterministic():
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


def test_dpo_loss_by_hand():
    t = lambda *x: torch.tensor(x)  # noqa: E731
    # h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected) = (-1 + 2) - (-3 + 2) = 2
    policy_c, policy_r, ref_c, ref_r = t(-1.0), t(-3.0), t(-2.0), t(-2.0)
    losses, chosen, rejected = dpo.dpo_loss(policy_c, policy_r, ref_c, ref_r, 0.5, "sigmoid")
    assert losses.item() == pytest.approx(math.log(1 + math.exp(-1.0)))  # -log sigmoid(0.5 * 2) = 0.3133
    assert (chosen.item(), rejected.item()) == (0.5, -0.5)  # beta * (policy - ref)
    losses, _, _ = dpo.dpo_loss(policy_c, policy_r, ref_c, ref_r, 0.5, "ipo")
    assert losses.item() == pytest.approx(1.0)  # (2 - 1 / (2 * 0.5))^2
    # the policy equal to the reference: log 2 whatever the scores; a better ranking lowers the loss
    same, _, _ = dpo.dpo_loss(t(-4.0, -9.0), t(-1.0, -2.0), t(-4.0, -9.0), t(-1.0, -2.0), 0.1, "sigmoid")
    assert torch.allclose(same, torch.full((2,), math.log(2)))
    scores = dpo.scores((t(-1.0, -5.0), t(-3.0, -4.0)), (t(-2.0, -5.0), t(-2.0, -3.0)), 0.5, "sigmoid")
    assert scores["preference_accuracy"] == 0.5 and scores["reward_accuracy"] == 1.0  # -5 < -4, yet 0 > -0.5
    assert scores["reward_margin"] == pytest.approx((1.0 + 0.5) / 2)


def pairs_frame(n: int) -> pl.DataFrame:
    """n pairs; the first has an earlier assistant turn in its prompt (which must not be a target)."""
    rows = []
    for i in range(n):
        prompt = [SYSTEM, {"role": "user", "content": f"Ticket {i}: my PayFlow invoice is wrong"}]
        if i == 0:
            prompt += [{"role": "assistant", "content": "Which product is this about?"},
                       {"role": "user", "content": "PayFlow."}]
        rows.append(chat.preference_pair(prompt, '{"category": "billing", "priority": "high"}',
                                         ["{'category': 'billing'", "Sure! billing", '{"category": "refund"}'][i % 3]))
    return pl.DataFrame({"record_id": [f"r{i}" for i in range(n)], "chosen": [r["chosen"] for r in rows],
                         "rejected": [r["rejected"] for r in rows]})


def tokenize_preference(df: pl.DataFrame, max_length: int, truncation: str) -> tuple[pl.DataFrame, dict]:
    """task=preference's tokenize with the tiny model's tokenizer and chatml, as the tokenize stage calls it."""
    c = ChatParams(template="chatml", truncation=truncation, max_new_tokens=8, samples=1)
    p = TokParams(tokenize=TokenizeParams(max_length=max_length, chunk_rows=100), model=TINY,
                  data=train_params(tp()).data, task=TaskParams(name="preference", chat=c))
    return task.tokenize(df, (TOK, chat.TEMPLATES["chatml"]), p)


def test_masks_cover_only_the_final_answers():
    df = pairs_frame(3)
    out, stats = tokenize_preference(df, 128, "left")
    assert out.columns == ["record_id", "chosen_ids", "chosen_labels", "rejected_ids", "rejected_labels", "chosen",
                           "rejected", "prompt_length"]
    assert stats["rows"] == 3 and stats["dropped"] == 0
    for row in out.iter_rows(named=True):
        for side in ("chosen", "rejected"):
            ids, labels = row[f"{side}_ids"], row[f"{side}_labels"]
            targets = [i for i, x in enumerate(labels) if x != chat.IGNORE]
            assert targets == list(range(targets[0], targets[-1] + 1))  # one span: the final answer
            if side == "chosen":
                assert targets[0] == row["prompt_length"]
            assert TOK.decode([ids[i] for i in targets]) == row[side] + "<|im_end|>"
    # pair 0: its earlier assistant turn is prompt, not target (sft would label it)
    assert "Which product" not in TOK.decode([t for t in out["chosen_labels"][0] if t != chat.IGNORE])
    # too long for max_length: the pair is dropped when either side is
    _, stats = tokenize_preference(df, 30, "drop")
    assert stats["rows"] == 0 and stats["dropped"] == 3


def sequences(n: int) -> dpo.Sequences:
    out, _ = tokenize_preference(pairs_frame(n), 128, "left")
    return dpo.interleave(out)


def trained_lora():
    model = causal.with_lora(causal.load_base(TINY), LORA)
    with torch.no_grad():
        for name, q in model.named_parameters():
            if "lora_B" in name:
                q.normal_(0, 0.05)  # a trained adapter
    return model


def test_reference_logps_are_the_starting_weights_with_the_adapter_disabled():
    seqs = sequences(4)
    model = trained_lora()
    ref = dpo.reference_logps(model, seqs, 0, 2, mean=False)
    plain = dpo.all_logps(causal.load_base(TINY), seqs, 0, 2, mean=False)
    adapted = dpo.all_logps(model, seqs, 0, 2, mean=False)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ref, plain))
    assert not torch.allclose(adapted[0], plain[0], atol=1e-3)
    assert torch.equal(dpo.all_logps(model, seqs, 0, 2, False)[0], adapted[0])  # the adapter is back on


def test_pairs_packed_in_a_row_score_as_one_pair_per_row():
    seqs = sequences(4)
    model = causal.load_base(TINY).eval()
    with torch.no_grad():
        packed = dpo.answer_logps(model, seqs, [[0, 1], [2, 3]], 0, mean=True)
        single = dpo.answer_logps(model, seqs, [[0], [1], [2], [3]], 0, mean=True)
    assert torch.equal(packed[2], single[2])
    assert torch.allclose(packed[0], single[0], atol=1e-5) and torch.allclose(packed[1], single[1], atol=1e-5)


def test_the_starting_point_from_an_sft_adapter_or_model(tmp_path):
    from stages.train import save

    sft = trained_lora()
    p = train_params(tp(mode="lora", lora=LORA))
    save(sft, p, tmp_path / "sft")  # what an sft run with train=sft_lora writes to data/train/model
    x = torch.tensor([sequences(1)[0][0]])
    start = dpo.load_start(TINY, str(tmp_path / "sft"))
    with torch.no_grad():
        assert torch.allclose(start(input_ids=x).logits, sft(input_ids=x).logits, atol=1e-4)
        assert not torch.allclose(start(input_ids=x).logits, causal.load_base(TINY)(input_ids=x).logits, atol=1e-3)
    start.save_pretrained(tmp_path / "full")  # a full model directory (train=sft_full)
    with torch.no_grad():
        again = dpo.load_start(TINY, str(tmp_path / "full"))(input_ids=x).logits
        assert torch.allclose(again, start(input_ids=x).logits, atol=1e-5)
    with pytest.raises(UserError, match="trained on 'tiny'"):
        dpo.load_start(dataclasses.replace(TINY, name="other/model", path="models/tiny-chat"), str(tmp_path / "sft"))
    with pytest.raises(UserError, match="neither a LoRA adapter directory"):
        dpo.load_start(TINY, str(tmp_path))


@pytest.mark.parametrize("mode, loss", [("full", "sigmoid"), ("lora", "ipo")])
def test_a_few_steps_raise_the_reward_margin(mode, loss, tmp_path):
    pairs, _ = tokenize_preference(pairs_frame(12), 128, "left")
    pairs.write_parquet(tmp_path / "pairs.parquet")  # what tokenize writes; the pairs serve as validation too
    seqs = dpo.interleave(pairs)
    p = tp(mode=mode, lora=LORA if mode == "lora" else None, lr=5e-3, epochs=3, batch_size=4, packing=False,
           preference=PreferenceTrainParams(init=None, beta=0.1, loss=loss))
    t = task.trainer(train_params(p, "preference"), [tmp_path / "pairs.parquet"] * 2)
    model = t.model
    logged = []
    result = loop.run(t.model, t.steps, t.step, t.validate, p, lambda m, s: logged.append((s, m)),
                      t.checkpoint_every, None, "k", t.net)
    assert result["steps"] == 9 and result["validation/reward_margin"] > 0
    first = next(m for _, m in logged if "validation/loss" in m)
    assert result["validation/loss"] < first["validation/loss"] <= (math.log(2) if loss == "sigmoid" else 100.0)
    if mode == "lora":  # the reference stays the base model: the adapter disabled gives the untrained scores
        ref = dpo.reference_logps(model, seqs, 0, 4, mean=True)
        base = dpo.all_logps(causal.load_base(TINY), seqs, 0, 4, mean=True)
        assert torch.allclose(ref[0], base[0], atol=1e-5)
