"""Typed, strict loading of params.yaml sections.

Every stage declares a dataclass whose fields are the top-level sections it
reads. Each section is validated whole against its dataclass: unknown keys,
missing keys and wrong types are errors that name the key. There are no
defaults in code: params.yaml (composed from conf/) says everything.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypeVar

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tunebuild.errors import UserError

PARAMS_FILE = "params.yaml"
FIX = "fix conf/ and run `tunebuild compose` (or edit params.yaml)"

T = TypeVar("T")


@dataclass
class ChatParams:
    """task.chat (task=sft, preference): how conversations become tokens (tokenize) and answers (evaluate)."""

    template: str                # when the tokenizer has no chat template of its own: chatml | llama3
    truncation: str              # an example over tokenize.max_length: drop | left (cut the prompt's start)
    max_new_tokens: int          # evaluate: greedy generation length
    samples: int                 # evaluate: generate for the first N test records (by record_id); -1: all


@dataclass
class TaskParams:
    name: str
    chat: Optional[ChatParams]   # null for classify


@dataclass
class ModelParams:
    name: str
    path: str                    # pkg:<package>/<dir or file.gguf>, a directory, a .gguf file, or a hub id
    license: str
    # classify: how the encoder's tokens become one vector, as the base was trained: mean_normalized
    # (mean over the real tokens, unit length: sentence-transformers such as all-MiniLM-L6-v2) |
    # mean | cls (BERT's pooler) | auto (read from the model folder's modules.json, else cls);
    # null for the other tasks; mandatory in params.yaml (MISSING: see below)
    pooling: Optional[str] = MISSING
    # The keys below are mandatory too (MISSING: params.yaml must set them); the marker only lets code that builds
    # these objects by hand (tests, benches) leave out what it does not use.
    dtype: str = MISSING         # float32 | bfloat16 | float16: the weights as loaded (causal LMs; training keeps
                                 # float32 master weights in full fine-tuning, float32 adapters with LoRA)
    attn_implementation: str = MISSING  # sdpa | eager | flex_attention | flash_attention_2 (flash-attn installed)


@dataclass
class SourceParams:
    """One raw source: which files, under which license, and how to read them."""

    name: str
    format: str                  # text (classify) | messages | prompt_completion | instruction (sft) | preference
    files: str                   # glob under data.raw_dir
    license: str                 # SPDX id (or LicenseRef-...)
    text_field: str              # text | the messages list | the prompt | the instruction (see `format`)
    label_field: Optional[str]   # label | null (messages) | the completion | the output | the chosen answer
    rejected_field: Optional[str]  # the rejected answer (format preference); null for the other formats
    group_field: Optional[str]   # e.g. a customer or conversation id: one group, one split
    encoding: str                # of JSONL and CSV files
    delimiter: str               # CSV only
    pii_regions: Optional[list[str]]  # phones without +country code: valid in one; null: curate.pii.regions


@dataclass
class ForgetParams:
    """Records to remove everywhere downstream (rule `forget`)."""

    record_ids: list[str]
    patterns: list[str]          # regular expressions matched against the text


@dataclass
class DataParams:
    name: str
    purpose: Optional[str]       # what a model trained on it is for, in a few words ("route support
                                 # tickets"): the cards say "to <purpose>"; null: generic wording
    raw_dir: str                 # every file under it belongs to one source
    labels: list[str]
    sources: list[SourceParams]
    forget: ForgetParams


@dataclass
class LoraParams:
    r: int
    alpha: int
    dropout: float
    target_modules: list[str]
    quantize: Optional[str] = MISSING  # causal LMs: null | nf4 | fp4: QLoRA, the frozen base in 4 bits (bitsandbytes,
                                 # CUDA); mandatory in params.yaml (MISSING: see ModelParams)


@dataclass
class ChatTrainParams:
    """train.chat (task=sft, preference): the causal-LM loop's own settings."""

    grad_accum: int              # micro-batches per optimizer step
    packing: bool                # examples packed into rows of pack_length, no attention across examples
    pack_length: int             # tokens per packed row (at least tokenize.max_length)
    checkpoint_every: int        # optimizer steps between resumable checkpoints; 0: none
    merge: bool                  # lora: also write the merged standalone model to data/train/model/merged/


@dataclass
class PreferenceTrainParams:
    """train.preference (task=preference): Direct Preference Optimization on top of a starting point."""

    init: Optional[str]          # the starting point (and reference): null = model.path; or an SFT result: a
                                 # LoRA adapter directory (on model.path) or a full model directory
    beta: float                  # strength of the pull towards the reference (DPO's beta)
    loss: str                    # sigmoid (DPO) | ipo


@dataclass
class TrainParams:
    """The train section: read by train (and listed by report in the model card)."""

    mode: str
    lr: float
    epochs: int
    max_steps: int
    batch_size: int
    weight_decay: float
    warmup_ratio: float
    seed: int
    # classify: stop after this many epochs without a better validation accuracy and keep the best
    # epoch's weights (epoch 0: before training); null: run every epoch, keep the last
    patience: Optional[int]
    # classify: the embeddings and the first k transformer blocks stay frozen (lora: no adapters
    # there); null: every layer trains
    frozen_layers: Optional[int]
    # classify: probe (the head starts as a logistic regression on the base's pooled train
    # vectors) | random; null for the other tasks
    head_init: Optional[str]
    lora: Optional[LoraParams]
    chat: Optional[ChatTrainParams]   # null for classify
    preference: Optional[PreferenceTrainParams]   # null but for task=preference
    gradient_checkpointing: bool = MISSING  # causal LMs: recompute each block's activations in backward (less
                                 # memory); mandatory in params.yaml (MISSING: see ModelParams)


@dataclass
class LaunchParams:
    """The launch section (read by train): how many processes train, and how they share the work."""

    processes: int               # worker processes on this machine; 1: train in the stage's own process
    backend: str                 # torch.distributed backend: gloo (CPU) | nccl (GPU, one GPU per process)
    strategy: str                # ddp: a full replica per process | fsdp: weights, gradients, optimizer state sharded


@dataclass
class IngestParams:
    max_line_bytes: int
    chunk_rows: int


@dataclass
class PiiParams:
    """Per PII type (tunebuild.pii.TYPES) an action: redact | reject | keep; and how numbers are read."""

    email: str
    phone: str
    card: str
    iban: str
    ip: str
    national_id: str
    date_of_birth: str
    regions: list[str]           # phones without +country code: valid in one (a source's pii_regions wins)
    national_ids: list[str]      # which national ids to look for (tunebuild.pii.NATIONAL_IDS)


@dataclass
class NearDuplicateParams:
    action: str          # reject: keep the first of a cluster; keep: keep all, same split
    threshold: float     # Jaccard similarity of the word-shingle sets (exact, on LSH candidates)
    num_perm: int        # MinHash permutations for LSH (neardup.lsh_shape: bands x rows)
    shingle_words: int
    seed: int


@dataclass
class CurateParams:
    min_chars: int
    max_chars: int
    min_words: int
    max_words: int
    max_symbol_ratio: float
    max_char_run: int
    boilerplate: list[str]
    scripts: list[str]
    min_script_ratio: float
    license_allowlist: list[str]
    pii: PiiParams
    near_duplicates: NearDuplicateParams
    chunk_rows: int      # records per chunk of the row-local rules (bounds memory; dedupe sees all)


@dataclass
class LeakageParams:
    threshold: float     # Jaccard similarity of word-shingle sets that counts as a leak
    max_pairs: int       # more leaking records than this fail the stage
    num_perm: int
    shingle_words: int
    seed: int


@dataclass
class SplitParams:
    salt: str
    validation: float
    test: float
    leakage: LeakageParams


@dataclass
class TokenizeParams:
    max_length: int
    chunk_rows: int


@dataclass
class EvaluateParams:
    split: str
    batch_size: int
    seed: int                    # the base model's untrained head, bootstrap resamples, cross-validation folds
    bootstrap: int               # resamples behind every 95% interval
    folds: int                   # classify: cross-validation folds of the out-of-fold label check
    few_shot: int                # sft: train examples in the few-shot prompts (the first ones; the nearest ones)
    # mandatory in params.yaml like every key (MISSING: see ModelParams)
    generation_batch: int = MISSING  # sft, preference: prompts per batch of greedy generation (left-padded)
    retrieval_model: Optional[str] = MISSING  # sft: the embedding model that finds each test prompt's nearest train
                                 # conversations (mean-pooled; model.path syntax); null: no retrieval baseline
    general_text: Optional[str] = MISSING  # sft, preference: JSONL of general text ({"text": ...}, under data/general/): base
                                 # and tuned loss on it (what tuning costs elsewhere); null: not measured


@dataclass
class ReportParams:
    """Facts only the owner knows; null ones are marked missing in the cards."""

    title: str
    owner: Optional[str]
    motivation: Optional[str]        # why the dataset was made, by whom
    collection: Optional[str]        # how the raw data was gathered (consent, time frame)
    intended_use: Optional[str]
    out_of_scope_use: Optional[str]
    maintenance: Optional[str]       # who maintains it, how to report a problem, update plan


# Every top-level section of params.yaml and its dataclass: `tunebuild compose` validates each one.
SECTIONS = {"task": TaskParams, "model": ModelParams, "data": DataParams, "launch": LaunchParams,
            "ingest": IngestParams, "curate": CurateParams, "split": SplitParams, "tokenize": TokenizeParams,
            "train": TrainParams, "evaluate": EvaluateParams, "report": ReportParams}


@dataclass
class CurateSections:
    """What curate reads (and `tunebuild audit` reads back at any revision)."""

    curate: CurateParams
    data: DataParams
    task: TaskParams


def check_no_target(node: Any, file: str, where: str = "") -> None:
    """Hydra would instantiate whatever `_target_` names; tunebuild never does, and refuses the key."""
    if isinstance(node, dict):
        for key, value in node.items():
            at = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                raise UserError(f"{file}: {at}: `_target_` is not allowed (tunebuild never instantiates objects "
                                "from config); remove it from conf/")
            check_no_target(value, file, at)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_no_target(value, file, f"{where}[{i}]")


def read_params_file(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: not found; run `tunebuild compose` in the project root") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML ({e}); {FIX}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{p}: expected a mapping of sections; {FIX}")
    check_no_target(raw, str(p))
    return raw


def load_section(cls: type[T], name: str, value: Any, file: str = PARAMS_FILE) -> T:
    """Validate one section against its dataclass, strictly."""
    if value is None or not isinstance(value, dict):
        raise UserError(f"{file}: section '{name}' is missing or not a mapping; {FIX}")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(cls), value)
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        key = f"{name}.{e.full_key}" if getattr(e, "full_key", None) else name
        msg = str(e).splitlines()[0]
        raise UserError(f"{file}: {key}: {msg}; {FIX}") from None


def parse_params(cls: type[T], raw: dict[str, Any], file: str = PARAMS_FILE) -> T:
    """Validate the sections named by the fields of `cls` (a dataclass of section dataclasses)."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: load_section(hints[f.name], f.name, raw.get(f.name), file)
                  for f in dataclasses.fields(cls)})  # type: ignore[arg-type]


def load_params(cls: type[T], path: str | Path = PARAMS_FILE) -> T:
    """Read params.yaml and validate the sections this stage reads."""
    return parse_params(cls, read_params_file(path), str(path))
