"""Retention tasks: MMLU and GSM8K with lm-eval's own prompts and metrics, on the local data files."""
