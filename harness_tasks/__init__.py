"""lm-evaluation-harness task packages for the debias harness."""
