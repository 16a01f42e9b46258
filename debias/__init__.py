"""debias-harness: measure social bias in causal LMs and remove it with small adapters.

Methods (``debias.methods``) train adapters in one Recipe shape; ``debias.train_and_eval`` runs the main
job over a run folder (``debias.run_folder``); see docs/ARCHITECTURE.md for the layout and import rule.
"""
