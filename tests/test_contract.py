"""The layout's contract, checked from the code itself.

- Each stage in dvc.yaml depends on exactly the project files it imports: the transitive closure of
  `stages/<verb>.py` over imports inside the project (imports inside functions count too), no more and
  no fewer. `tunebuild.tasks.load` imports the selected task by name, so a stage that reaches
  `tunebuild.tasks` depends on every task module under `tunebuild/tasks/` and what they import.
- Arrows point one way: no module of the library imports a stage; what only the command line uses is
  a dependency of no stage.
- One verb, one name: stage key = stages/<verb>.py = params section = data/<verb>/.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "tunebuild")
CLI_ONLY = {"tunebuild/cli.py", "tunebuild/__main__.py", "tunebuild/audit.py", "tunebuild/audit_page.py",
            "tunebuild/compose.py", "tunebuild/diff.py", "tunebuild/diff_page.py", "tunebuild/forget.py",
            "tunebuild/promote.py", "tunebuild/revs.py", "tunebuild/trace.py"}


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The project file of a dotted module name, or None when it is not one of ours."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root / Path(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def imported(path: Path, root: Path = ROOT) -> set[Path]:
    """Project files that `path` imports directly (with the packages on the way, as Python loads them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in parts + [base] if p)
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    if path.relative_to(root).as_posix() == "tunebuild/tasks/__init__.py":  # load(name): any task module
        names.update(f"tunebuild.tasks.{f.stem}" for f in (root / "tunebuild/tasks").glob("*.py"))
    files = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            f = module_file(".".join(parts[:i]), root)
            if f is not None:
                files.add(f)
    return files - {path}


def closure(path: Path, root: Path = ROOT) -> set[str]:
    """`path` with every project file that importing it loads (its packages' __init__ files included)."""
    packages = [d / "__init__.py" for d in path.parents if root in d.parents and (d / "__init__.py").is_file()]
    seen, todo = set(), [path, *packages]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(imported(f, root))
    return {f.relative_to(root).as_posix() for f in seen}


def code_deps(stage: dict) -> set[str]:
    return {d for d in stage.get("deps", []) if d.endswith(".py") or d in PACKAGES}


def test_stage_deps_are_the_import_closure():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    problems = []
    for verb, stage in stages.items():
        want = closure(ROOT / "stages" / f"{verb}.py")
        have = code_deps(stage)
        if want - have:
            problems.append(f"{verb}: imports but does not depend on {sorted(want - have)}")
        if have - want:
            problems.append(f"{verb}: depends on but does not import {sorted(have - want)}")
    assert not problems, "\n".join(problems)


def test_one_verb_one_name():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for verb, stage in stages.items():
        assert stage["cmd"] == f"python -m stages.{verb}"
        assert (ROOT / "stages" / f"{verb}.py").is_file()
        assert verb in params, f"params.yaml has no {verb} section"
        outs = [next(iter(o)) if isinstance(o, dict) else o
                for kind in ("outs", "metrics", "plots") for o in stage.get(kind, [])]
        assert outs and all(o.startswith(f"data/{verb}/") for o in outs), (verb, outs)


def test_arrows_point_one_way():
    library = sorted((ROOT / "tunebuild").rglob("*.py"))
    for f in library:
        stage_imports = [g for g in imported(f) if g.relative_to(ROOT).parts[0] == "stages"]
        assert not stage_imports, f"{f.relative_to(ROOT)} imports a stage: {stage_imports}"
    used_by_stages = set().union(*(closure(f) for f in (ROOT / "stages").glob("*.py")))
    assert not CLI_ONLY & used_by_stages, sorted(CLI_ONLY & used_by_stages)


def test_compose_check_does_not_import_torch():
    code = ("import sys, runpy; sys.argv = ['tunebuild', 'compose', '--check']\n"
            "try:\n    runpy.run_module('tunebuild', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'compose --check imported torch'\n"
            "assert 'transformers' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_import_tunebuild():
    proc = subprocess.run([sys.executable, "-c", "import tunebuild, tunebuild.cli"], cwd="/", capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_bytecode_and_caches_are_ignored_by_dvc():
    """Users' Pythons write __pycache__ next to every module: DVC must not hash it (.dvcignore)."""
    cache = ROOT / "tunebuild" / "__pycache__"
    cache.mkdir(exist_ok=True)
    probe = cache / "contract_probe.cpython-311.pyc"
    probe.write_bytes(b"")
    try:
        proc = subprocess.run(["dvc", "check-ignore", str(probe.relative_to(ROOT)), "stages/__pycache__/x.pyc",
                               "tunebuild/x.pyc", ".pytest_cache/v"], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    finally:
        probe.unlink()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.split()) == 4, proc.stdout
