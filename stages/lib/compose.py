"""Compose conf/ into params.yaml with Hydra, byte for byte as `dvc exp run` does."""
from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from stages.lib.errors import UserError
from stages.lib.params import check_no_target, parse_params

STAGES = ("ingest", "curate", "split", "tokenize", "train", "evaluate", "report")
SHARED = ("task", "model", "data", "launch")


def compose(conf_dir: Path, overrides: list[str], config_name: str = "config") -> str:
    """The composed, resolved config as YAML text (what DVC's Hydra integration writes)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not (conf_dir / f"{config_name}.yaml").is_file():
        raise UserError(f"{conf_dir}/{config_name}.yaml: not found; run tunebuild in the project root")
    try:
        with initialize_config_dir(str(conf_dir.resolve()), version_base=None):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(f"{conf_dir}: {str(e).splitlines()[0]}") from None
    return OmegaConf.to_yaml(cfg)


def validate(text: str, origin: str) -> None:
    """Every section must match the dataclass of every stage that reads it; no unknown sections."""
    raw = yaml.safe_load(text) or {}
    check_no_target(raw, origin)
    unknown = sorted(set(raw) - set(STAGES) - set(SHARED))
    if unknown:
        raise UserError(f"{origin}: unknown section '{unknown[0]}' (known: {', '.join(SHARED + STAGES)})")
    for verb in STAGES:
        parse_params(importlib.import_module(f"stages.{verb}").Params, raw, origin)
