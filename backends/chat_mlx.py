"""MLX chat generation: mlx-lm's `stream_generate` with its sampler, on the process's MLX thread.

Generation runs as one job on the MLX thread (`backends.mlx_thread`) that hands each text piece to
the caller through a queue, so the caller's thread (an asyncio worker, a REPL) never touches MLX.
Works on float and 4-bit quantized (mlx-community) models; adapters go through `LoraSwap` (merged
into float layers, a LoRA branch on quantized ones).
"""

from __future__ import annotations

import enum
import queue
import threading
from collections.abc import Generator
from pathlib import Path

from backends.adapters import LoraWeights
from backends.chat_base import SamplingParams
from backends.mlx_thread import mlx_worker, pinned


class _Done(enum.Enum):
    """The end mark the job puts after the last piece (an enum member, so `is` narrows the type)."""

    DONE = enum.auto()


_DONE = _Done.DONE


class MlxChatEngine:
    """Generates replies with an mlx-lm model."""

    backend = "mlx"

    def __init__(self, model_dir: Path, device: str, dtype: str, stop_ids: list[int]) -> None:
        self.device, self.stop_ids = device, list(stop_ids)
        self._load(Path(model_dir), dtype)

    @pinned
    def _load(self, model_dir: Path, dtype: str) -> None:
        import mlx.core as mx
        from mlx_lm.utils import load_model, load_tokenizer

        from backends.engine_mlx import LoraSwap

        mx.set_default_device(mx.gpu if self.device == "gpu" else mx.cpu)
        self.model, _ = load_model(model_dir)
        if dtype == "auto" and self.device == "cpu":
            dtype = "float32"  # bf16 matmuls are slow on MLX's CPU backend
        if dtype != "auto":
            self.model.set_dtype(getattr(mx, dtype))
        self.dtype = dtype
        self.tokenizer = load_tokenizer(model_dir, eos_token_ids=self.stop_ids)
        self._swap = LoraSwap()

    @pinned
    def apply_lora(self, lora: LoraWeights | None) -> None:
        self._swap.apply(self.model, lora)

    def _generate(self, prompt_ids: list[int], params: SamplingParams, stop: threading.Event,
                  out: queue.Queue[str | BaseException | _Done]) -> None:
        """The job on the MLX thread: stream pieces into `out`, then the end mark (or the error)."""
        import mlx.core as mx
        from mlx_lm.generate import stream_generate
        from mlx_lm.sample_utils import make_sampler

        try:
            if params.seed is not None:
                mx.random.seed(params.seed)
            sampler = make_sampler(params.temperature, params.top_p if params.temperature > 0 else 0.0)
            for response in stream_generate(self.model, self.tokenizer, mx.array(prompt_ids),
                                            max_tokens=params.max_tokens, sampler=sampler):
                if response.text:
                    out.put(response.text)
                if stop.is_set():
                    break
            out.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            out.put(exc)

    def stream(self, prompt_ids: list[int], params: SamplingParams,
               stop: threading.Event) -> Generator[str, None, None]:
        out: queue.Queue[str | BaseException | _Done] = queue.Queue()
        job = mlx_worker().submit(self._generate, prompt_ids, params, stop, out)
        try:
            while True:
                item = out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # the consumer left early (or finished): end the job after its current token
            job.result()

    @pinned
    def close(self) -> None:
        import mlx.core as mx

        if hasattr(self, "model"):
            del self.model
            mx.clear_cache()
