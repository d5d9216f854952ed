"""The embedded default: a tiny Qwen3-architecture model and a real Qwen BPE tokenizer, made offline.

Everything runs on a fresh machine with no network because the default model is built here, from
a seed, into the user cache directory. The weights come from numpy's PCG64 generator and are
written with safetensors and sorted JSON, so the same spec gives the same bytes every time.

The tokenizer is the Qwen BPE restricted to its first 16,384 ranks (shipped in `data/`): ids below
that are the real Qwen ids (`yes`=9693, `no`=2152, `system`=8948), so prompts tokenize like Qwen3's;
the 26 Qwen3 special tokens follow the base vocabulary in Qwen3's order.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import platformdirs

QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN3_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)
# Qwen3 marks these as added-but-not-special: they survive decode(skip_special_tokens=True).
NON_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}
BPE_RESOURCE = "qwen_bpe_16k.tiktoken"
EMBEDDED_PREFIX = "embedded:"

# Qwen3's chat format with thinking always off, for system/user/assistant turns (no tools): what
# Qwen3's own template renders with enable_thinking=False. The last assistant turn after the last user
# message opens with an empty think block; earlier assistant turns carry none (as in Qwen3).
# `backends.chat_template.render_chat` is the Python twin the trainer and generator use.
QWEN3_CHAT_TEMPLATE = (
    "{%- set ns = namespace(last_query=messages|length - 1) %}"
    "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.last_query = loop.index0 %}"
    "{%- endif %}{%- endfor %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- if loop.index0 > ns.last_query and loop.last %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + message['content'].lstrip('\\n') }}"
    "{%- else %}{{- '<|im_start|>assistant\\n' + message['content'] }}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinyQwen3Spec:
    """Sizes and seed of a tiny Qwen3 model; the folder name carries a hash of the spec."""

    hidden_size: int = 64
    intermediate_size: int = 192
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 16
    seed: int = 0
    init_std: float = 0.08
    embed_std: float = 0.5
    tie_word_embeddings: bool = True
    vocab_size: int | None = None  # pad the embedding to this many rows (e.g. Qwen3's 151,936)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


EMBEDDED_MODELS: dict[str, TinyQwen3Spec] = {
    "tiny-qwen3-reranker": TinyQwen3Spec(),
    "tiny-qwen3-chat": TinyQwen3Spec(seed=1),
}


def cache_root() -> Path:
    override = os.environ.get("RAGWELD_CACHE")
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("ragweld-tui"))


def build_tokenizer_json() -> tuple[str, int]:
    """Return (tokenizer.json text, vocabulary size incl. special tokens) built from the bundled ranks."""
    from tokenizers import AddedToken, normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    with resources.as_file(resources.files("backends.data") / BPE_RESOURCE) as ranks_path:
        tokenizer = TikTokenConverter(vocab_file=str(ranks_path), pattern=QWEN2_SPLIT_PATTERN).converted()
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.add_special_tokens(
        [AddedToken(t, special=t not in NON_SPECIAL, normalized=False) for t in QWEN3_SPECIAL_TOKENS]
    )
    return tokenizer.to_str(), tokenizer.get_vocab_size(with_added_tokens=True)


def _model_config(spec: TinyQwen3Spec, vocab_size: int, specials: dict[str, int]) -> dict[str, object]:
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "vocab_size": vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": 40960,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "rope_scaling": None,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": spec.num_hidden_layers,
        "bos_token_id": specials["<|endoftext|>"],
        "eos_token_id": specials["<|im_end|>"],
        "pad_token_id": specials["<|endoftext|>"],
        "torch_dtype": "float32",
        "use_cache": True,
    }


def make_weights(spec: TinyQwen3Spec, vocab_size: int) -> dict[str, np.ndarray]:
    """Seeded float32 weights with the Hugging Face Qwen3 parameter names."""
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    h, inter, hd = spec.hidden_size, spec.intermediate_size, spec.head_dim
    q_out, kv_out = spec.num_attention_heads * hd, spec.num_key_value_heads * hd

    def normal(*shape: int, std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    weights = {"model.embed_tokens.weight": normal(vocab_size, h, std=spec.embed_std)}
    for i in range(spec.num_hidden_layers):
        p = f"model.layers.{i}."
        weights |= {
            p + "input_layernorm.weight": np.ones(h, np.float32),
            p + "post_attention_layernorm.weight": np.ones(h, np.float32),
            p + "self_attn.q_proj.weight": normal(q_out, h, std=spec.init_std),
            p + "self_attn.k_proj.weight": normal(kv_out, h, std=spec.init_std),
            p + "self_attn.v_proj.weight": normal(kv_out, h, std=spec.init_std),
            p + "self_attn.o_proj.weight": normal(h, q_out, std=spec.init_std),
            p + "self_attn.q_norm.weight": np.ones(hd, np.float32),
            p + "self_attn.k_norm.weight": np.ones(hd, np.float32),
            p + "mlp.gate_proj.weight": normal(inter, h, std=spec.init_std),
            p + "mlp.up_proj.weight": normal(inter, h, std=spec.init_std),
            p + "mlp.down_proj.weight": normal(h, inter, std=spec.init_std),
        }
    weights["model.norm.weight"] = np.ones(h, np.float32)
    if not spec.tie_word_embeddings:
        weights["lm_head.weight"] = normal(vocab_size, h, std=spec.embed_std)
    return weights


def write_tiny_qwen3(dest: Path, spec: TinyQwen3Spec, weights: dict[str, np.ndarray] | None = None) -> Path:
    """Write a complete Hugging Face folder (config, safetensors, tokenizer) atomically to `dest`."""
    from safetensors.numpy import save_file

    tokenizer_json, vocab_size = build_tokenizer_json()
    vocab_size = max(vocab_size, spec.vocab_size or 0)
    vocab = json.loads(tokenizer_json)["added_tokens"]
    specials = {tok["content"]: tok["id"] for tok in vocab}
    weights = weights if weights is not None else make_weights(spec, vocab_size)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (tmp / "config.json").write_text(json.dumps(_model_config(spec, vocab_size, specials), indent=2, sort_keys=True))
        save_file(dict(sorted(weights.items())), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "tokenizer.json").write_text(tokenizer_json)
        tokenizer_config = {
            "tokenizer_class": "Qwen2Tokenizer",
            "model_max_length": 40960,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
            "bos_token": None,
            "unk_token": None,
            "add_prefix_space": False,
            "clean_up_tokenization_spaces": False,
            "errors": "replace",
            "split_special_tokens": False,
            "chat_template": QWEN3_CHAT_TEMPLATE,
        }
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, sort_keys=True))
        gen = {"bos_token_id": specials["<|endoftext|>"], "eos_token_id": [specials["<|im_end|>"], specials["<|endoftext|>"]],
               "pad_token_id": specials["<|endoftext|>"], "do_sample": False}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2, sort_keys=True))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def ensure_embedded(name: str) -> Path:
    """Return the folder of embedded model `name`, building it into the cache on first use."""
    spec = EMBEDDED_MODELS.get(name)
    if spec is None:
        raise KeyError(f"unknown embedded model {name!r}; known: {', '.join(sorted(EMBEDDED_MODELS))}")
    dest = cache_root() / "models" / f"{name}-{spec.digest()}"
    if not (dest / "model.safetensors").is_file():
        write_tiny_qwen3(dest, spec)
    else:
        _refresh_chat_template(dest)
    return dest


def _refresh_chat_template(dest: Path) -> None:
    """Give a folder cached by an older version the current chat template (weights are unchanged)."""
    path = dest / "tokenizer_config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if config.get("chat_template") != QWEN3_CHAT_TEMPLATE:
        config["chat_template"] = QWEN3_CHAT_TEMPLATE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
        os.replace(tmp, path)
