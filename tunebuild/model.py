"""Where a base model lives: `pkg:<package>/<dir>`, a local directory, or a hub id."""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

from tunebuild.errors import UserError


def resolve_model_path(spec: str) -> str:
    """Turn `model.path` into something `from_pretrained` can load offline."""
    if spec.startswith("pkg:"):
        package, _, sub = spec[4:].partition("/")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise UserError(f"params.yaml: model.path: package '{package}' is not installed; "
                            f"`pip install {package.replace('_', '-')}` or point model.path at a local directory")
        path = Path(list(found.submodule_search_locations)[0]) / sub
        if not path.is_dir():
            raise UserError(f"params.yaml: model.path: {path} does not exist inside package '{package}'")
        return str(path)
    if Path(spec).exists():
        return spec
    return spec  # a hub id: loaded from the local cache (HF_HUB_OFFLINE)


def quiet_transformers() -> None:
    """Offline, no progress bars, no deprecation chatter in stage logs."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*(remote file|config file).*")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
