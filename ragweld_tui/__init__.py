"""ragweld-tui: a terminal studio for Qwen3 learning rerankers and agents. Importing it loads no ML framework."""
