"""gee_bbq: BBQ (Parrish et al., 2022) accuracy and bias scores as lm-eval tasks."""
