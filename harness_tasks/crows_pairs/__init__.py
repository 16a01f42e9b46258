"""gee_crows_pairs: CrowS-Pairs stereotype preference as lm-eval tasks."""
