"""What the retention tasks contribute to the report: accuracy/perplexity directions and trade-off axes."""

from __future__ import annotations

from harness_tasks._report_spec import BenchmarkReport, RetentionAxis

REPORT = BenchmarkReport(
    name="retention",
    ideal={
        "acc": "higher",
        "exact_match": "higher",
        "word_perplexity": "lower",
        "byte_perplexity": "lower",
        "bits_per_byte": "lower",
    },
    headline=("acc", "exact_match"),
    retention_axes=(
        RetentionAxis("gee_mmlu", "acc", "MMLU acc"),
        RetentionAxis("gee_mmlu_lite", "acc", "MMLU-lite acc"),
        RetentionAxis("gee_gsm8k", "exact_match,strict-match", "GSM8K exact match"),
        RetentionAxis("gee_gsm8k_lite", "exact_match,strict-match", "GSM8K-lite exact match"),
    ),
)
