"""The model card's scoring procedure, kept as the reference our fast scorers are checked against.

Left padding, a full forward through the LM head (full-vocabulary logits at every position), the
last column, then log_softmax over [no, yes]. Slow by design; used by tests and bench/ only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from backends.prompt import PREFIX, SUFFIX, format_prompt


def model_card_logodds(model: Any, tokenizer: Any, query: str, docs: Sequence[str], instruction: str,
                       max_length: int = 8192, batch_size: int = 8) -> NDArray[np.float64]:
    """yes−no log-odds for each doc exactly as the Qwen3-Reranker model card computes them."""
    import torch

    yes_id = tokenizer.convert_tokens_to_ids("yes")
    no_id = tokenizer.convert_tokens_to_ids("no")
    prefix = tokenizer.encode(PREFIX, add_special_tokens=False)
    suffix = tokenizer.encode(SUFFIX, add_special_tokens=False)
    tokenizer.padding_side = "left"
    out: list[float] = []
    for start in range(0, len(docs), batch_size):
        chunk = docs[start:start + batch_size]
        bodies = [format_prompt(query, d, instruction)[len(PREFIX):-len(SUFFIX)] for d in chunk]
        enc = tokenizer(bodies, padding=False, truncation="longest_first", return_attention_mask=False,
                        max_length=max_length - len(prefix) - len(suffix))
        enc["input_ids"] = [prefix + ids + suffix for ids in enc["input_ids"]]
        batch = tokenizer.pad(enc, padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**{k: v.to(model.device) for k, v in batch.items()}).logits[:, -1, :]
        pair = torch.nn.functional.log_softmax(torch.stack([logits[:, no_id], logits[:, yes_id]], dim=1).float(), dim=1)
        out.extend((pair[:, 1] - pair[:, 0]).double().cpu().tolist())
    return np.array(out)
