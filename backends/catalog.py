"""The model catalog: every model the product offers, from one place.

Three sources, merged by id: the embedded defaults (made offline), the known Qwen3 rerankers and chat
models with their sizes and the backends and dtypes that fit them, and what the local Hugging Face
cache really holds (read with `huggingface_hub.scan_cache_dir`, which never touches the network).
The configured base can be added too, so a form always offers what the config names. Screens, the
`models` command, help texts and the debug prompt all read this list; none keeps its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from backends.settings import EMBEDDED_CHAT, EMBEDDED_RERANKER

Kind = Literal["reranker", "chat", "other"]
Source = Literal["embedded", "known", "cache", "config"]


@dataclass(frozen=True)
class Fit:
    """A way to run a model: backend, device and dtype (e.g. torch on cuda in bfloat16)."""

    backend: str
    device: str
    dtype: str

    def __str__(self) -> str:
        return f"{self.backend}/{self.device}/{self.dtype}"


# Full-precision checkpoints: MLX on Apple Silicon in the checkpoint's bf16, torch bf16 on CUDA's tensor
# cores, torch bf16 on a CPU with AMX-BF16 or AVX512-BF16 (what `dtype = "auto"` picks there: 1.9-2.2x
# fp32's pairs/s on AVX512-BF16, more with AMX) and fp32 on other CPUs (exact; emulated bf16 is slower)
# and MPS. MLX's CPU backend also runs them on Linux (at OpenBLAS speed once setup links it).
FULL_PRECISION: tuple[Fit, ...] = (Fit("mlx", "gpu", "bfloat16"), Fit("torch", "cuda", "bfloat16"),
                                   Fit("torch", "mps", "float32"), Fit("torch", "cpu", "bfloat16"),
                                   Fit("torch", "cpu", "float32"), Fit("mlx", "cpu", "float32"))
ANYWHERE: tuple[Fit, ...] = (Fit("torch", "cpu", "float32"), Fit("mlx", "cpu", "float32"),
                             Fit("torch", "cuda", "float32"), Fit("mlx", "gpu", "float32"))


def mlx_quantized(bits: int) -> tuple[Fit, ...]:
    """mlx-community conversions: MLX only (torch cannot load MLX's quantized layers)."""
    return (Fit("mlx", "gpu", f"{bits}-bit"), Fit("mlx", "cpu", f"{bits}-bit"))


@dataclass(frozen=True)
class CatalogEntry:
    """One model the product can offer, with what is known about it and whether it is on this machine."""

    id: str
    kind: Kind
    source: Source
    params: str | None = None  # e.g. "0.6B"
    layers: int | None = None
    hidden: int | None = None
    fits: tuple[Fit, ...] = ()
    quantization: str | None = None  # e.g. "4-bit" (mlx-community conversions)
    cached: bool = False  # in the local Hugging Face cache (or, for embedded models, always available)
    path: str | None = None  # the cached snapshot folder
    size_bytes: int | None = None
    note: str = ""

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends that can load it, in the order of `fits`."""
        return tuple(dict.fromkeys(f.backend for f in self.fits))

    def summary(self, with_id: bool = True) -> str:
        """One line for forms and the debug prompt: kind, size, backends, whether it is here."""
        size = " · ".join(x for x in (self.params, f"{self.layers} layers × {self.hidden}" if self.layers else None,
                                      self.quantization) if x)
        here = "embedded" if self.source == "embedded" else "cached" if self.cached else "not downloaded"
        backends = ", ".join(self.backends) or "?"
        return " · ".join(x for x in (self.id if with_id else "", self.kind, size, backends, here) if x)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["fits"] = [str(f) for f in self.fits]
        out["backends"] = list(self.backends)
        return out


def _known(kind: Kind, name: str, params: str, layers: int, hidden: int) -> CatalogEntry:
    return CatalogEntry(f"Qwen/{name}", kind, "known", params, layers, hidden, FULL_PRECISION)


# Sizes from each model's config.json (num_hidden_layers, hidden_size) and model card.
QWEN3_RERANKERS: tuple[CatalogEntry, ...] = (
    _known("reranker", "Qwen3-Reranker-0.6B", "0.6B", 28, 1024),
    _known("reranker", "Qwen3-Reranker-4B", "4B", 36, 2560),
    _known("reranker", "Qwen3-Reranker-8B", "8B", 36, 4096),
)
QWEN3_CHAT: tuple[CatalogEntry, ...] = (
    _known("chat", "Qwen3-0.6B", "0.6B", 28, 1024),
    _known("chat", "Qwen3-1.7B", "1.7B", 28, 2048),
    _known("chat", "Qwen3-4B", "4B", 36, 2560),
    _known("chat", "Qwen3-8B", "8B", 36, 4096),
    _known("chat", "Qwen3-14B", "14B", 40, 5120),
)
MLX_COMMUNITY: tuple[CatalogEntry, ...] = tuple(
    replace(chat, id=f"mlx-community/{chat.id.split('/')[1]}-{bits}bit", fits=mlx_quantized(bits),
            quantization=f"{bits}-bit", note="MLX only; QLoRA")
    for chat in QWEN3_CHAT for bits in (4, 8))


def embedded_entries() -> tuple[CatalogEntry, ...]:
    """The embedded defaults, made offline on first use (always available)."""
    from backends.embedded import EMBEDDED_MODELS, EMBEDDED_PREFIX

    out = []
    for ref, kind in ((EMBEDDED_RERANKER, "reranker"), (EMBEDDED_CHAT, "chat")):
        spec = EMBEDDED_MODELS[ref[len(EMBEDDED_PREFIX):]]
        out.append(CatalogEntry(ref, "reranker" if kind == "reranker" else "chat", "embedded", "tiny",
                                spec.num_hidden_layers, spec.hidden_size, ANYWHERE, cached=True,
                                note="random weights, built offline (the default)"))
    return tuple(out)


def known_entries() -> list[CatalogEntry]:
    """The embedded and known models, without looking at the disk (instant; the UI's first list)."""
    return [*embedded_entries(), *QWEN3_RERANKERS, *QWEN3_CHAT, *MLX_COMMUNITY]


@dataclass(frozen=True)
class CacheScan:
    """The models in the local Hugging Face cache, and one line per problem found (never an exception)."""

    entries: tuple[CatalogEntry, ...]
    warnings: tuple[str, ...] = ()


def default_hub_cache() -> Path:
    """The hub cache folder huggingface_hub uses (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def scan_hub_cache(hub_cache: Path | None = None) -> CacheScan:
    """The model repositories of the local hub cache; a missing cache is empty, a corrupt one a warning."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound, CorruptedCacheException

    folder = hub_cache or default_hub_cache()
    if not folder.is_dir():
        return CacheScan(())
    try:
        info = scan_cache_dir(folder)
    except (CacheNotFound, CorruptedCacheException, OSError, ValueError) as exc:
        return CacheScan((), (f"Hugging Face cache {folder} could not be read: {exc}",))
    warnings = tuple(f"Hugging Face cache {folder}: {w}" for w in info.warnings)
    entries = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revision = max(repo.revisions, key=lambda r: ("main" in r.refs, r.last_modified))
        entries.append(_cached_entry(repo.repo_id, Path(revision.snapshot_path), repo.size_on_disk))
    return CacheScan(tuple(entries), warnings)


def _cached_entry(repo_id: str, snapshot: Path, size: int) -> CatalogEntry:
    """What a cached snapshot's config.json says: depth, width, quantization, and so which backends fit."""
    try:
        config = json.loads((snapshot / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    quant = config.get("quantization") if isinstance(config, dict) else None
    bits = quant.get("bits") if isinstance(quant, dict) else None
    lowered = repo_id.lower()
    kind: Kind = "reranker" if "reranker" in lowered else (
        "chat" if str(config.get("model_type", "")).startswith("qwen3") or "qwen3" in lowered else "other")
    layers, hidden = config.get("num_hidden_layers"), config.get("hidden_size")
    return CatalogEntry(
        repo_id, kind, "cache", layers=layers if isinstance(layers, int) else None,
        hidden=hidden if isinstance(hidden, int) else None,
        fits=mlx_quantized(int(bits)) if isinstance(bits, int) else FULL_PRECISION,
        quantization=f"{bits}-bit" if isinstance(bits, int) else None, cached=True, path=str(snapshot),
        size_bytes=size, note="" if (snapshot / "config.json").is_file() else "no config.json in the snapshot")


def model_catalog(hub_cache: Path | None = None, configured: Iterable[str] = ()) -> tuple[list[CatalogEntry], list[str]]:
    """Every model to offer (embedded, known, cached, configured) and the cache's warning lines.

    Known ids found in the cache take its path and size; cached models the catalog does not know are
    listed after the known ones; a configured reference (a hub id or a local folder) that is none of
    these comes last, so a form always offers what the config names.
    """
    scan = scan_hub_cache(hub_cache)
    cached = {e.id: e for e in scan.entries}
    entries = []
    for known in known_entries():
        hit = cached.pop(known.id, None)
        entries.append(known if hit is None else replace(known, cached=True, path=hit.path, size_bytes=hit.size_bytes))
    entries += cached.values()
    seen = {e.id for e in entries}
    for ref in configured:
        if ref and ref not in seen:
            seen.add(ref)
            entries.append(CatalogEntry(ref, "other", "config", cached=Path(ref).expanduser().is_dir(),
                                        note="from the configuration"))
    return entries, list(scan.warnings)


def describe_model(entries: Iterable[CatalogEntry], ref: str, with_id: bool = True) -> str:
    """The catalog's line for `ref`, or what an unlisted reference is (a folder, or a hub id to download)."""
    entry = next((e for e in entries if e.id == ref), None)
    if entry is not None:
        return entry.summary(with_id)
    name = f"{ref} · " if with_id else ""
    path = Path(ref).expanduser()
    if path.is_dir():
        return name + "local folder" + ("" if (path / "config.json").is_file() else " (no config.json)")
    return name + "not in the catalog or the local cache (`ragweld-tui models` lists them)"


def model_ids(entries: Iterable[CatalogEntry], kind: Kind | None = None) -> list[str]:
    """The ids of `entries` (of one kind, when given), available ones first, catalog order otherwise."""
    chosen = [e for e in entries if kind is None or e.kind == kind or e.kind == "other"]
    return [e.id for e in sorted(chosen, key=lambda e: not e.cached)]
