"""Compare two evaluations of the same tasks (base vs debiased), metric by metric, with bootstrap CIs."""

from __future__ import annotations

from typing import Any

from debias.stats import Comparison, paired_bootstrap


def _by_doc(samples: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {s["doc_id"]: s for s in samples}


def compare(
    base: dict[str, Any], new: dict[str, Any], task_manager, iters: int = 1000, seed: int = 0
) -> dict[str, list[Comparison]]:
    """{task: [Comparison per metric]} for every task both result sets logged samples for.

    Documents are paired by ``doc_id``; a metric a document did not produce (e.g. a subgroup rate on a
    document of another subgroup) is skipped for that document in both runs alike.
    """
    out: dict[str, list[Comparison]] = {}
    for task in sorted(set(base.get("samples", {})) & set(new.get("samples", {}))):
        aggregations = task_manager.load([task])["tasks"][task].aggregation()
        base_docs, new_docs = _by_doc(base["samples"][task]), _by_doc(new["samples"][task])
        if base_docs.keys() != new_docs.keys():
            raise ValueError(f"{task}: base and debiased runs evaluated different documents")
        doc_ids = sorted(base_docs)
        rows = []
        for metric, aggregate in sorted(aggregations.items()):
            ids = [d for d in doc_ids if metric in base_docs[d] and metric in new_docs[d]]
            if not ids:
                continue
            rows.append(
                paired_bootstrap(
                    aggregate,
                    [base_docs[d][metric] for d in ids],
                    [new_docs[d][metric] for d in ids],
                    metric,
                    iters=iters,
                    seed=seed,
                )
            )
        out[task] = rows
    return out
