#!/usr/bin/env bash
# The main job on the embedded default: train a LoRA reranker on the bundled demo dataset
# (headless, with the base vs tuned table and the promotion decision), then score the same
# query with the plain base and with the promoted adapter, side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
RT=.venv/bin/ragweld-tui
"$RT" --run config.toml
QUERY="questions about war with army and history"
DOCS=(-d "Historians study how the army fought the war and what the battle meant for the soldiers."
      -d "Huge sale on the army boots and war games, only today! Click here for a bonus."
      -d "The garden needs water, and the roots of the tree grow in spring.")
echo; echo "== base model =="
"$RT" score -q "$QUERY" "${DOCS[@]}" --no-adapter
echo; echo "== with the active (promoted) adapter =="
"$RT" score -q "$QUERY" "${DOCS[@]}"
