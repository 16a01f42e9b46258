"""Group-entropy-equalization (GEE) debiasing harness."""
