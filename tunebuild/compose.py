"""Compose conf/ into params.yaml with Hydra, byte for byte as `dvc exp run` does."""
from __future__ import annotations

from pathlib import Path

import yaml

from tunebuild.errors import UserError
from tunebuild.params import SECTIONS, check_no_target, load_section



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
    """Every section must match its dataclass (tunebuild.params.SECTIONS); no unknown or missing sections."""
    raw = yaml.safe_load(text) or {}
    check_no_target(raw, origin)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise UserError(f"{origin}: unknown section '{unknown[0]}' (known: {', '.join(SECTIONS)})")
    for name, cls in SECTIONS.items():
        load_section(cls, name, raw.get(name), origin)


def config_name(conf: Path) -> str:
    """The primary config DVC's Hydra integration composes (hydra.config_name in .dvc/config)."""
    from dvc.config import Config

    return Config(dvc_dir=str(conf.parent / ".dvc"))["hydra"].get("config_name", "config")
