"""Training choices, one at a time, on the real-data suite (bench/bench_real.py's sets, the demo).

Each set is prepared once (project copy, data in place, `dvc repro tokenize`); then for every
variant (a list of `tunebuild compose` overrides) in turn, set by set, the train stage runs
(`python -m stages.train`, timed from process start) and the tuned model is scored on validation
and test (accuracy). The cheap alternatives are fit once per set, as evaluate fits them. Prints
one JSON line per (variant, set).

    python bench/bench_choices.py --work /tmp/choices --sets wordnet,demo \\
        --variant main="model.pooling=cls train.head_init=random train.patience=null" \\
        --variant mean="train.head_init=random train.patience=null"
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_real import DEMO, child_cpu, prepare, revision, sh  # noqa: E402
from real import sets  # noqa: E402

SCORE = """
import json, torch
from pathlib import Path
from stages.evaluate import Params
from tunebuild.classifier import load_split, predict
from tunebuild.params import load_params
from tunebuild.tasks.classify import load_tuned
p = load_params(Params)
torch.use_deterministic_algorithms(True)
model = load_tuned(p, Path("data/train/model"))
out = {}
for split in ("validation", "test"):
    ids, y = load_split(f"data/tokenize/{split}.parquet")
    logits, _ = predict(model, ids, y, 64, model.config.pad_token_id or 0)
    out[split] = round((logits.argmax(-1) == torch.tensor(y)).float().mean().item(), 4)
print(json.dumps(out))
"""


def ready(name: str, work: Path) -> Path:
    repo = work / name
    if not (repo / "data" / "tokenize" / "test.parquet").is_file():
        prepare(name, repo, [])
        sh(repo, sys.executable, "-m", "dvc", "repro", "tokenize")
    return repo


CHEAP = """
import json, numpy as np
from stages.evaluate import Params
from tunebuild import baselines
from tunebuild.tasks.classify import load_rows
from tunebuild.classifier import load_base
from tunebuild.params import load_params
p = load_params(Params)
train, test = (load_rows(f"data/tokenize/{s}.parquet", f"data/split/{s}.parquet") for s in ("train", "test"))
encoder = load_base(p.model, p.data.labels, 0).encoder
x = {n: baselines.embed(encoder, df["input_ids"].to_list(), 64, 0)
     for n, df in (("train", train), ("test", test))}
y, k = train["label_id"].to_numpy().astype(np.int64), len(p.data.labels)
inputs = {"tfidf_logreg": (baselines.tfidf_logreg, train["text"].to_list(), test["text"].to_list()),
          "embedding_logreg": (baselines.embedding_logreg, x["train"], x["test"])}
out = {}
with baselines.one_blas_thread():
    for name, (make, xt, xe) in inputs.items():
        pred = baselines.fit_proba(make, xt, y, xe, k).argmax(1)
        out[name] = round(float((pred == test["label_id"].to_numpy()).mean()), 4)
print(json.dumps(out))
"""


def alternatives(repo: Path) -> dict:
    """Test accuracy of the cheap alternatives (fit on train), as evaluate fits them."""
    return json.loads(sh(repo, sys.executable, "-c", CHEAP))


def run_variant(repo: Path, overrides: list[str]) -> dict:
    sh(repo, sys.executable, "-m", "tunebuild.cli", "compose", *overrides)
    start, cpu = time.perf_counter(), child_cpu()
    log = sh(repo, sys.executable, "-m", "stages.train")
    seconds, cpu = round(time.perf_counter() - start, 1), round(child_cpu() - cpu, 1)
    kept = [x for x in log.splitlines() if x.startswith("train: kept epoch")]
    scores = json.loads(
        subprocess.run(
            [sys.executable, "-c", SCORE], cwd=repo, check=True, capture_output=True, text=True
        ).stdout
    )
    return {"train_seconds": seconds, "train_cpu_seconds": cpu, "kept": kept[0] if kept else None} | scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--work", type=Path, required=True, help="prepared repos live here (reused across runs)"
    )
    ap.add_argument("--sets", default=",".join([*sets.SETS, DEMO]))
    ap.add_argument(
        "--variant", action="append", required=True, help='NAME="override override ..."'
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    names = args.sets.split(",")
    repos = {name: ready(name, args.work) for name in names}
    cheap = {name: alternatives(repo) for name, repo in repos.items()}
    for variant in args.variant:
        label, _, overrides = variant.partition("=")
        for name, repo in repos.items():
            line = (
                {
                    "bench": "choices",
                    "variant": label,
                    "overrides": overrides.split(),
                    "set": name,
                    "rev": revision(),
                }
                | run_variant(repo, overrides.split())
                | {"cheap_test": cheap[name]}
            )
            print(json.dumps(line), flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
