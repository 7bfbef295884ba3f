#!/usr/bin/env bash
# One command on a machine with one CUDA GPU: ours vs TRL's SFTTrainer on the SmolLM2-135M and Llama-3.2-1B
# shapes (random weights, real configs), LoRA and full, bf16, packing on (TRL: wrapped and bfd), printing JSON lines
# of tokens/s and peak memory (bench/bench_sft.py --gpu) and appending them to bench/results/sft-gpu.jsonl.
# Sized for at most 8 minutes on one H200 (install included). Targets: ours >= 1.2x TRL wrapped tokens/s on every
# row, peak memory no higher than TRL's.
#
#   bash bench/gpu_check.sh                     # installs what is missing with pip, then runs
#   TUNEBUILD_WHEELS=/path/to/wheels bash bench/gpu_check.sh   # an offline machine: install from a wheel folder
#   QUICK=1 bash bench/gpu_check.sh             # fewer steps
#
# It keeps the machine's own torch (a CUDA build): nothing here pins or upgrades it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA GPU here (torch.cuda.is_available() is False)')"

# What bench_sft.py imports besides torch: transformers, peft, trl, datasets, and tunebuild's own small deps.
missing=$("$PY" - <<'PY'
import importlib.util
need = {"transformers": "transformers>=5.0,<6", "peft": "peft>=0.17", "trl": "trl>=1.16", "datasets": "datasets",
        "accelerate": "accelerate", "omegaconf": "omegaconf>=2.3,<2.4", "yaml": "pyyaml", "orjson": "orjson",
        "safetensors": "safetensors", "tokenizers": "tokenizers>=0.21"}
print(" ".join(spec for module, spec in need.items() if importlib.util.find_spec(module) is None))
PY
)
if [ -n "$missing" ]; then
  echo "gpu_check: installing $missing" >&2
  if [ -n "${TUNEBUILD_WHEELS:-}" ]; then
    "$PY" -m pip install --quiet --no-index --find-links "$TUNEBUILD_WHEELS" $missing
  else
    "$PY" -m pip install --quiet $missing
  fi
fi
"$PY" -c "import torch, transformers, peft, trl; print('gpu_check:', torch.cuda.get_device_name(), 'torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__)" >&2

mkdir -p bench/results
timeout 420 "$PY" bench/bench_sft.py --gpu ${QUICK:+--quick} --out bench/results/sft-gpu.jsonl
