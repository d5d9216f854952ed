"""PyTorch chat generation: transformers' `generate` in a thread, text streamed through a streamer.

The reply streams through `TextIteratorStreamer` (prompt skipped, special tokens dropped), so the
caller gets text as it is decoded; `<|im_end|>` (and `<|endoftext|>`) end the reply. A stop flag
checked after every token lets the caller abandon a reply early without leaving a thread behind.
Adapters are merged into the weights (`LoraMerge`), so a swap costs one weight copy and serving none.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import torch

from backends.adapters import LoraWeights
from backends.chat_base import SamplingParams
from backends.engine_torch import DTYPES, LoraMerge
from backends.select import torch_dtype


@contextlib.contextmanager
def _seeded(seed: int | None, device: str) -> Iterator[None]:
    """Sample from a generator seeded with `seed`, restoring the process's RNG state afterwards."""
    if seed is None:
        yield
        return
    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class TorchChatEngine:
    """Generates replies with a transformers causal LM."""

    backend = "torch"

    def __init__(self, model_dir: Path, tokenizer: Any, device: str, dtype: str, stop_ids: list[int],
                 trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device, self.tokenizer, self.stop_ids = device, tokenizer, list(stop_ids)
        self.dtype = torch_dtype(dtype, device).dtype
        # Any: transformers types the `.to` wrapper as an unbound function.
        model: Any = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=DTYPES[self.dtype], attn_implementation="sdpa", trust_remote_code=trust_remote_code,
            use_safetensors=True)
        self.model = model.to(device).eval()
        self._merge = LoraMerge()

    def apply_lora(self, lora: LoraWeights | None) -> None:
        self._merge.apply(self.model, lora)

    def stream(self, prompt_ids: list[int], params: SamplingParams,
               stop: threading.Event) -> Generator[str, None, None]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:  # noqa: ARG002 - transformers' signature
                return stop.is_set()

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        sampling = params.temperature > 0.0
        kwargs: dict[str, Any] = dict(
            input_ids=torch.tensor([prompt_ids], device=self.device), streamer=streamer,
            max_new_tokens=params.max_tokens, do_sample=sampling, eos_token_id=self.stop_ids,
            pad_token_id=self.stop_ids[-1], stopping_criteria=StoppingCriteriaList([_Stop()]))
        if sampling:
            kwargs |= dict(temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:  # greedy: no sampling knobs (transformers warns when they are set without do_sample)
            kwargs |= dict(temperature=None, top_p=None, top_k=None)
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with torch.inference_mode(), _seeded(params.seed, self.device):
                    self.model.generate(**kwargs)
            except BaseException as exc:  # handed to the consumer below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=generate, name="torch-generate", daemon=True)
        worker.start()
        try:
            for text in streamer:
                if text:
                    yield text
        finally:
            stop.set()  # the consumer left early (or finished): let generate() return
            worker.join()
        if failure:
            raise failure[0]

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
