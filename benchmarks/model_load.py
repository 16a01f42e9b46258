"""Time to load the default model from the converted cache, after the one-off GGUF conversion.

The first load in a process also pays transformers' lazy imports, so it is reported apart from the
median of the following loads. Writes benchmarks/results/model_load.json.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from debias import evaluation, models
from debias.atomic import write_json_atomic

OUT = Path(__file__).parent / "results" / "model_load.json"


def main(repeats: int = 5) -> None:
    start = time.perf_counter()
    models.resolve(models.DEFAULT_MODEL)  # converts on first use; a cache hit afterwards
    resolve_s = time.perf_counter() - start
    loads = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        models.load(models.DEFAULT_MODEL)
        loads.append(time.perf_counter() - start)
    report = {
        "resolve_s": round(resolve_s, 4),
        "first_load_in_process_s": round(loads[0], 3),
        "cached_load_median_s": round(statistics.median(loads[1:]), 3),
        "repeats": repeats,
        "libraries": evaluation.library_versions(),
    }
    write_json_atomic(OUT, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
