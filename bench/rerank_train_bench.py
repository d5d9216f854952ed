"""Reranker training against a peer: our PyTorch trainer vs sentence-transformers' CrossEncoder trainer.

Both sides train the same yes/no causal-LM reranker (the embedded tiny Qwen3 reranker, random
weights) with peft LoRA of the same rank, alpha and target modules, on the same steps of the bundled
demo data: the groups our `TrainStream` gives step by step (1 positive + group_size−1 negatives per
query, batch_size queries per step), the same prompt tokens, AdamW at the same rate with warmup and
cosine decay, clipping at 1.0. Sentence-transformers (v5+) loads a `*ForCausalLM` folder as a
`CrossEncoder` of Transformer(text-generation) + `LogitScore(yes, no)` - the Qwen3-Reranker recipe -
and the loss is its `MultipleNegativesRankingLoss` with the hard negatives as columns, no in-batch
negatives (a two-line subclass), scale 1 and no activation: softmax cross-entropy over each group's log-odds, our listwise
loss. Its chat template is set to render the query/document roles exactly as our prompt builder does
(checked token for token before training).

Reported: training pairs/s (pairs = batch_size·group_size per step, timed over the whole training
loop, model loading and evaluation excluded) and dev MRR@10 after the same number of steps, both
evaluated by our `trainers.evaluation` on the same dev split (the sentence-transformers side through
its own trained model). Each side runs in its own process, alternating, `--rounds` times; the
fastest round of each side counts (other jobs on a shared box only ever slow a round).

sentence-transformers is not a dependency of ragweld-tui; install it to run this bench:

    pip install sentence-transformers   # v5+ (plus its datasets / scikit-learn dependencies)
    python bench/rerank_train_bench.py [--steps 40] [--batch 8] [--group 4] [--rank 8] [--rounds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any, cast

import numpy as np

SIDES = ("ours", "sentence-transformers")


def plan_for(args: argparse.Namespace) -> Any:
    """The demo run plan both sides share: data, split, stream, model folder, prompt builders."""
    from trainers.run_plan import RunPlan
    from trainers.settings import AppConfig

    config = AppConfig.model_validate({
        "model": {"backend": "torch", "device": "cpu", "dtype": "float32"},
        "lora": {"rank": args.rank, "alpha": 2.0 * args.rank, "dropout": 0.0},
        "train": {"batch_size": args.batch, "group_size": args.group, "max_steps": args.steps,
                  "warmup_steps": args.warmup, "learning_rate": args.lr}})
    return RunPlan.prepare(config)


def run_ours(args: argparse.Namespace) -> dict[str, float]:
    plan = plan_for(args)
    engine = plan.make_engine()
    try:
        start = time.perf_counter()
        for step in range(args.steps):
            engine.train_step(plan.batches_for(step))
        seconds = time.perf_counter() - start
        mrr = plan.evaluate(engine).metrics["mrr@10"]
    finally:
        engine.close()
    return {"seconds": seconds, "mrr": mrr}


def qwen3_reranker_template(instruction: str) -> str:
    """A chat template rendering a (query, document) pair as the Qwen3-Reranker prompt."""
    from backends.prompt import PREFIX, SUFFIX

    def lit(text: str) -> str:
        return "{{ " + json.dumps(text) + " }}"

    query = '{{ messages | selectattr("role", "eq", "query") | map(attribute="content") | first }}'
    doc = '{{ messages | selectattr("role", "eq", "document") | map(attribute="content") | first }}'
    return lit(PREFIX + f"<Instruct>: {instruction}\n<Query>: ") + query + lit("\n<Document>: ") + doc + lit(SUFFIX)


def run_sentence_transformers(args: argparse.Namespace) -> dict[str, float]:
    import torch
    import pyarrow
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from sentence_transformers.cross_encoder import (CrossEncoder, CrossEncoderTrainer,
                                                     CrossEncoderTrainingArguments)
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss

    plan = plan_for(args)
    model = CrossEncoder(str(plan.model_dir), device="cpu", max_length=plan.config.train.max_length,
                         model_kwargs={"dtype": torch.float32, "attn_implementation": "sdpa"})
    model.tokenizer.chat_template = qwen3_reranker_template(plan.config.prompt.instruction)
    check_same_tokens(model, plan)
    lora = plan.config.lora
    # peft directly on the inner transformers model (`CrossEncoder.add_adapter` wants peft >= 0.22).
    model[0].model = get_peft_model(model[0].model, LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=0.0, target_modules=list(lora.target_modules), bias="none"))
    columns: dict[str, list[str]] = {name: [] for name in ["query"] + [f"doc{i}" for i in range(args.group)]}
    for step in range(args.steps):  # exactly our stream's groups, in order, one batch per step
        for group in plan.stream.batch(step):
            columns["query"].append(group.query)
            for i, doc in enumerate(group.docs):
                columns[f"doc{i}"].append(doc)

    class HardNegativesOnly(MultipleNegativesRankingLoss):  # type: ignore[misc]
        """Its loss over the given columns only (`num_negatives=0` is refused by torch.multinomial)."""

        def get_in_batch_negatives(self, anchors: list[str], candidates: list[list[str]]) -> Iterator[list[str]]:
            return iter(())

    loss = HardNegativesOnly(model, scale=1.0, activation_fn=torch.nn.Identity())
    with tempfile.TemporaryDirectory() as tmp:
        training = CrossEncoderTrainingArguments(
            output_dir=tmp, per_device_train_batch_size=args.batch, max_steps=args.steps, learning_rate=args.lr,
            warmup_steps=args.warmup, lr_scheduler_type="cosine", weight_decay=0.0, max_grad_norm=1.0,
            adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, seed=plan.config.train.seed,
            save_strategy="no", report_to="none", logging_steps=10**9, use_cpu=True, disable_tqdm=True,
            dataloader_drop_last=True)
        trainer = CrossEncoderTrainer(model=model, args=training, train_dataset=Dataset(pyarrow.Table.from_pydict(columns), fingerprint="bench"),
                                      loss=loss)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    hf_model = model[0].model
    hf_model.eval()
    yes, no = plan.answer_ids

    def logodds(rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)  # left padding, as sentence-transformers pads causal models
        ids = torch.tensor([[plan.pad_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        with torch.no_grad():
            logits = hf_model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1]
        out: np.ndarray = (logits[:, yes] - logits[:, no]).double().numpy()
        return out

    class FullRows:
        """Our evaluation's scorer interface over whole rows (the peer's model has no prefix reuse)."""

        def logodds(self, rows: list[list[int]]) -> np.ndarray:
            return logodds(rows)

        def prefix_state(self, head: list[int]) -> object:
            return head

        def logodds_after(self, state: object, tails: list[list[int]]) -> np.ndarray:
            head = cast(list[int], state)
            return logodds([head + tail for tail in tails])

    from trainers.evaluation import evaluate_queries

    mrr = evaluate_queries(FullRows(), plan.eval_builder, plan.split.dev).metrics["mrr@10"]
    return {"seconds": seconds, "mrr": mrr}


def check_same_tokens(model: Any, plan: Any) -> None:
    """Refuse to compare unless sentence-transformers feeds the model our prompt's exact tokens."""
    example = plan.split.dev[0]
    doc = example.candidates().docs[0]
    features = model[0].preprocess([[example.query, doc]])
    theirs = [int(t) for t, m in zip(features["input_ids"][0], features["attention_mask"][0]) if m]
    ours = plan.builder.build(example.query, [doc])[0]
    if theirs != ours:
        raise SystemExit(f"sentence-transformers tokenizes the pair differently:\n{theirs}\n{ours}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8, help="queries per step")
    parser.add_argument("--group", type=int, default=4, help="documents per query (1 positive)")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads, both sides")
    parser.add_argument("--_side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if importlib.util.find_spec("sentence_transformers") is None:
        print("sentence-transformers is not installed (pip install sentence-transformers); skipping this bench")
        return
    if args._side:
        import torch

        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        result = (run_ours if args._side == "ours" else run_sentence_transformers)(args)
        print("RESULT " + json.dumps(result))
        return
    pairs = args.steps * args.batch * args.group
    results: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for _ in range(args.rounds):
        for side in SIDES:
            cmd = [sys.executable, __file__, "--_side", side] + [
                f"--{k}={v}" for k, v in vars(args).items() if k not in ("_side", "rounds")]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not line:
                raise SystemExit(f"{side} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            results[side].append(json.loads(line[0][7:]))
            print(f"  {side:22} {pairs / results[side][-1]['seconds']:8.1f} pairs/s   "
                  f"dev MRR@10 {results[side][-1]['mrr']:.3f}", flush=True)
    best = {side: min(r["seconds"] for r in results[side]) for side in SIDES}
    print(f"tiny Qwen3 reranker, {args.steps} steps x {args.batch} queries x {args.group} docs, LoRA rank {args.rank}, "
          f"{args.threads} thread(s), best of {args.rounds}")
    for side in SIDES:
        mrrs = ", ".join(f"{r['mrr']:.3f}" for r in results[side])
        print(f"{side:22} {pairs / best[side]:8.1f} pairs/s   dev MRR@10 {mrrs}")
    print(f"ratio (ours / sentence-transformers): {best['sentence-transformers'] / best['ours']:.2f}x")


if __name__ == "__main__":
    main()
