"""Write-then-rename for files and folders: see ``harness_tasks._io``, the single implementation.

Re-exported here so that code in ``debias`` and ``reports`` names one module for it.
"""

from harness_tasks._io import atomic_dir, atomic_file, write_json_atomic, write_text_atomic

__all__ = ["atomic_dir", "atomic_file", "write_json_atomic", "write_text_atomic"]
