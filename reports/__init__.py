"""The HTML bias report: one self-contained file comparing base and debiased runs (see render.py)."""
