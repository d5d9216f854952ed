"""Export an adapter to another library's format (PEFT, mlx-lm) or a merged model folder, parity-checked.

Each export is written into a hidden folder beside the destination, loaded back through the target's
own library (peft, mlx_lm, transformers) and scored on a fixed probe set against our scorer serving
the source adapter; only an export that agrees (fp32: |Δp| ≤ 1e-4 and identical rankings) is moved
into place, so a failed export leaves the destination untouched.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from backends.adapters import (
    MANIFEST, AdapterError, LoraWeights, Manifest, read_adapter, verify_adapter, write_manifest,
    write_mlx_adapter, write_peft_adapter,
)
from backends.models import base_fingerprint, resolve_model
from backends.prompt import PromptBuilder, template_fingerprint
from backends.settings import ScorerSettings

ExportFormat = Literal["peft", "mlx", "merged"]
FORMATS: tuple[ExportFormat, ...] = ("peft", "mlx", "merged")
FP32_TOLERANCE = 1e-4  # |Δp| allowed when both sides compute in fp32 (seen: ~1e-7)
HALF_TOLERANCE = 1e-2  # a merged model saved in bf16/fp16 rounds every merged weight
PROBE_QUERIES = (
    "how do vaccines train the immune system",
    "citation indexing of scientific journals",
    "best way to store fresh bread",
)
PROBE_DOCS = (
    "Vaccines expose the immune system to a harmless antigen so it learns to recognise the pathogen.",
    "Citation indexes list, for each paper, the later papers that cite it.",
    "Bread keeps best at room temperature in a paper bag; the freezer is better than the fridge.",
    "The weather this weekend will be sunny with light winds from the west.",
)
Progress = Callable[[str], None]


class ExportError(ValueError):
    """An export the user asked for that cannot be done (destination taken, base mismatch, ...)."""


@dataclass(frozen=True)
class ParityResult:
    """How far the export's probe scores are from the source's."""

    max_abs_dp: float
    max_abs_dlogit: float
    rankings_equal: bool
    pairs: int
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_dp <= self.tolerance and self.rankings_equal

    def summary(self) -> str:
        return (f"parity on {self.pairs} probe pairs: max |Δp| {self.max_abs_dp:.2e} (tolerance {self.tolerance:.0e}), "
                f"max |Δlogit| {self.max_abs_dlogit:.2e}, rankings {'equal' if self.rankings_equal else 'DIFFER'}")


class ParityError(Exception):
    """The exported files do not score like the source; nothing was written at the destination."""

    def __init__(self, result: ParityResult) -> None:
        self.result = result
        super().__init__(f"export failed the parity check: {result.summary()}")


@dataclass(frozen=True)
class ExportResult:
    out: Path
    fmt: ExportFormat
    base_model: str
    parity: ParityResult
    files: tuple[str, ...]


def compare_scores(source: NDArray[np.float64], exported: NDArray[np.float64], tolerance: float) -> ParityResult:
    """Parity of two (queries, docs) log-odds tables: largest probability gap and per-query rankings."""
    p_src, p_exp = 1.0 / (1.0 + np.exp(-source)), 1.0 / (1.0 + np.exp(-exported))
    rankings = all(np.array_equal(np.argsort(-s, kind="stable"), np.argsort(-e, kind="stable"))
                   for s, e in zip(source, exported))
    return ParityResult(float(np.max(np.abs(p_src - p_exp))), float(np.max(np.abs(source - exported))),
                        rankings, int(source.size), tolerance)


def probe_rows(builder: PromptBuilder) -> list[list[list[int]]]:
    """Token rows of the probe set, per query: the exact Qwen3-Reranker prompt."""
    return [builder.build(query, list(PROBE_DOCS)) for query in PROBE_QUERIES]


def _num_layers(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text())["num_hidden_layers"])


def choose_base(manifest: Manifest | None, model: str | None, fallback: str) -> tuple[str, Path]:
    """The base to export against: `--model`, else the manifest's base, else the configured one;
    refused when its fingerprint differs from the one the adapter was trained on."""
    candidates = [model] if model else ([manifest.base_model] if manifest and manifest.base_model else []) + [fallback]
    last: Exception | None = None
    for ref in candidates:
        try:
            model_dir = resolve_model(ref)
        except FileNotFoundError as exc:
            last = exc
            continue
        if manifest is not None and base_fingerprint(model_dir) != manifest.base_fingerprint:
            if model or ref == candidates[-1]:
                raise ExportError(f"base {ref} (fingerprint {base_fingerprint(model_dir)}) is not the base the adapter was "
                                  f"trained on ({manifest.base_model}, fingerprint {manifest.base_fingerprint}); "
                                  "pass that model with --model")
            continue
        return ref, model_dir
    raise ExportError(f"{last}; pass the adapter's base model with --model")


def check_destination(out: Path, source: Path, force: bool) -> None:
    """Refuse a destination that would lose data: a file, a non-empty folder (unless force), the source."""
    if out.is_file() or out.is_symlink():
        raise ExportError(f"{out}: exists and is not a folder")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent}: folder does not exist")
    src, dst = source.resolve(), out.resolve()
    if src == dst or dst in src.parents or src in dst.parents:
        raise ExportError(f"{out}: overlaps the source adapter {source}")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out}: folder exists and is not empty (use --force to replace it)")


def _install(tmp: Path, out: Path) -> None:
    """Move the checked export into place; a replaced folder goes only after the new one is there."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def write_export(tmp: Path, fmt: ExportFormat, lora: LoraWeights, model_dir: Path, base_ref: str,
                 manifest: Manifest | None, *, dtype: str = "auto", max_shard_size: str = "5GB") -> None:
    """Write `lora` in `fmt` into the empty folder `tmp` (adapters get a manifest for our own scorer)."""
    if fmt == "merged":
        write_merged(tmp, lora, model_dir, dtype=dtype, max_shard_size=max_shard_size)
        return
    if fmt == "mlx":
        # mlx-lm wraps the last num_layers blocks; blocks without tensors keep lora_b = 0 (no change).
        first = min(lora.layer_indices(), default=0)
        write_mlx_adapter(tmp, lora, _num_layers(model_dir) - first)
    else:
        write_peft_adapter(tmp, lora, base_ref if not base_ref.startswith("embedded:") else str(model_dir))
    write_manifest(tmp, Manifest(
        base_model=base_ref, base_fingerprint=manifest.base_fingerprint if manifest else base_fingerprint(model_dir),
        template_fingerprint=manifest.template_fingerprint if manifest else template_fingerprint(),
        backend="mlx" if fmt == "mlx" else "torch", files={},
        dataset_fingerprint=manifest.dataset_fingerprint if manifest else "", kind=manifest.kind if manifest else "reranker",
        run_id=manifest.run_id if manifest else "", metrics=dict(manifest.metrics) if manifest else {},
        precision=manifest.precision if manifest else "",
        gradient_checkpointing=manifest.gradient_checkpointing if manifest else False))


def write_merged(out: Path, lora: LoraWeights, model_dir: Path, *, dtype: str = "auto", max_shard_size: str = "5GB") -> None:
    """A full Qwen3ForCausalLM folder with the LoRA merged into its weights (sharded safetensors, config,
    generation config, tokenizer). The head (tied or not) is left as the base has it: LoRA here never
    touches embeddings, so the `yes`/`no` rows vLLM's reranker conversion reads are the base's."""
    import torch
    from transformers import AutoModelForCausalLM

    from backends.engine_torch import DTYPES, LoraMerge
    from backends.models import load_tokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True)
    LoraMerge().apply(model, lora)  # merged in fp32, rounded once to the saved dtype
    saved = dtype if dtype != "auto" else _config_dtype(model_dir)
    model = model.to(DTYPES[saved])
    model.config.dtype = DTYPES[saved]
    model.save_pretrained(str(out), max_shard_size=max_shard_size, safe_serialization=True)
    load_tokenizer(model_dir).save_pretrained(str(out))
    if not (out / "generation_config.json").is_file() and (model_dir / "generation_config.json").is_file():
        shutil.copy2(model_dir / "generation_config.json", out / "generation_config.json")


def _config_dtype(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    value = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    return value if value in ("float32", "bfloat16", "float16") else "float32"


def saved_dtype(fmt: ExportFormat, model_dir: Path, dtype: str) -> str:
    """The precision the export stores weights in (adapters are always fp32)."""
    if fmt != "merged":
        return "float32"
    return dtype if dtype != "auto" else _config_dtype(model_dir)


# --- scoring the probe set: the source with our scorer, the export with its own library -------------------

def source_logodds(settings: ScorerSettings, lora: LoraWeights) -> NDArray[np.float64]:
    """Our scorer (fp32) serving the source adapter, on the probe set: (queries, docs) log-odds."""
    from backends.scorer import Reranker
    from backends.select import choose_backend

    def run() -> NDArray[np.float64]:
        reranker = Reranker.load(replace(settings, dtype="float32"))
        try:
            reranker.use_adapter(None, lora)
            return np.array([[s.logit for s in reranker.score(q, list(PROBE_DOCS))] for q in PROBE_QUERIES])
        finally:
            reranker.close()

    if choose_backend(settings.backend, settings.device).backend == "mlx":
        from backends.mlx_thread import mlx_worker

        return mlx_worker().call(run)
    return run()


def export_logodds(fmt: ExportFormat, folder: Path, model_dir: Path, rows: list[list[list[int]]],
                   answer_ids: tuple[int, int]) -> NDArray[np.float64]:
    """The export loaded through its own library, logit_yes − logit_no at the last token (fp32)."""
    if fmt == "mlx":
        from backends.mlx_thread import mlx_worker

        return mlx_worker().call(_mlx_logodds, folder, model_dir, rows, answer_ids)
    return _torch_logodds(fmt, folder, model_dir, rows, answer_ids)


def _torch_logodds(fmt: ExportFormat, folder: Path, model_dir: Path, rows: list[list[list[int]]],
                   answer_ids: tuple[int, int]) -> NDArray[np.float64]:
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if fmt == "merged":
        model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    else:
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        model = PeftModel.from_pretrained(base, str(folder))
    model = model.to(device).eval()
    yes, no = answer_ids
    out = np.empty((len(rows), len(rows[0])))
    with torch.inference_mode():
        for q, query_rows in enumerate(rows):
            for d, row in enumerate(query_rows):
                logits = model(input_ids=torch.tensor([row], device=device)).logits[0, -1].float()
                out[q, d] = float(logits[yes] - logits[no])
    del model
    return out


def _mlx_logodds(folder: Path, model_dir: Path, rows: list[list[list[int]]],
                 answer_ids: tuple[int, int]) -> NDArray[np.float64]:
    import mlx.core as mx
    import mlx_lm

    loaded = mlx_lm.load(str(model_dir), adapter_path=str(folder))
    model: Any = loaded[0]
    model.set_dtype(mx.float32)
    yes, no = answer_ids
    out = np.empty((len(rows), len(rows[0])))
    for q, query_rows in enumerate(rows):
        for d, row in enumerate(query_rows):
            logits = model(mx.array([row]))[0, -1].astype(mx.float32)
            out[q, d] = float((logits[yes] - logits[no]).item())
    del model
    mx.clear_cache()
    return out


def check_parity(fmt: ExportFormat, folder: Path, model_dir: Path, settings: ScorerSettings, lora: LoraWeights,
                 tolerance: float = FP32_TOLERANCE) -> ParityResult:
    """Score the probe set with our scorer + `lora` and with the export in `folder` through its library."""
    from backends.models import load_tokenizer
    from backends.prompt import resolve_answer_ids

    tokenizer = load_tokenizer(model_dir, settings.trust_remote_code)
    builder = PromptBuilder(tokenizer, settings.instruction, settings.max_length)
    source = source_logodds(replace(settings, model=str(model_dir)), lora)
    exported = export_logodds(fmt, folder, model_dir, probe_rows(builder), resolve_answer_ids(tokenizer))
    return compare_scores(source, exported, tolerance)


def read_source(folder: Path) -> tuple[LoraWeights, Manifest | None]:
    """The adapter to export and its manifest (verified; None for an adapter made elsewhere without one)."""
    if not folder.is_dir():
        raise ExportError(f"{folder}: adapter folder not found")
    manifest = verify_adapter(folder) if (folder / MANIFEST).is_file() else None
    return read_adapter(folder), manifest


def export_adapter(source: Path, fmt: str, out: Path, settings: ScorerSettings, *,
                   model: str | None = None, force: bool = False, dtype: str = "auto", max_shard_size: str = "5GB",
                   progress: Progress | None = None) -> ExportResult:
    """Export the adapter in `source` to `out` as `fmt`, parity-checked; nothing changes at `out` on failure.

    `settings` is the scorer configuration used for the source side of the parity check (its model is
    the fallback base when neither `model` nor the manifest names one that is present here).
    """
    say = progress or (lambda _text: None)
    target = next((f for f in FORMATS if f == fmt), None)
    if target is None:
        raise ExportError(f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")
    check_destination(out, source, force)
    lora, manifest = read_source(source)
    base_ref, model_dir = choose_base(manifest, model, settings.model)
    say(f"base {base_ref} ({model_dir}); {len(lora.modules)} LoRA modules, rank {lora.rank}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".export", dir=out.parent))
    try:
        say(f"writing {fmt} into {tmp.name}")
        write_export(tmp, target, lora, model_dir, base_ref, manifest, dtype=dtype, max_shard_size=max_shard_size)
        say("checking parity on the probe set")
        tolerance = FP32_TOLERANCE if saved_dtype(target, model_dir, dtype) == "float32" else HALF_TOLERANCE
        parity = check_parity(target, tmp, model_dir, settings, lora, tolerance)
        if not parity.ok:
            raise ParityError(parity)
        check_destination(out, source, force)  # nothing appeared there meanwhile
        _install(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, target, base_ref, parity, tuple(sorted(p.name for p in out.iterdir())))


__all__ = ["AdapterError", "ExportError", "ExportResult", "FORMATS", "ParityError", "ParityResult", "check_parity",
           "compare_scores", "export_adapter"]
