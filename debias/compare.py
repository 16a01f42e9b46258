"""Compare two evaluations of the same tasks (base vs debiased), metric by metric, with bootstrap CIs."""

from __future__ import annotations

from typing import Any

from debias.stats import Comparison, paired_bootstrap, paired_bootstrap_joint


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
        joint_groups: dict[int, tuple] = {}  # id(joint function) -> (function, prepare, [metrics])
        for metric, aggregate in sorted(aggregations.items()):
            ids = [d for d in doc_ids if metric in base_docs[d] and metric in new_docs[d]]
            if not ids:
                continue
            joint = getattr(aggregate, "joint", None)
            if joint is not None and ids == doc_ids:
                prepare = getattr(aggregate, "prepare", None)
                joint_groups.setdefault(id(joint), (joint, prepare, []))[2].append(metric)
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
        for joint, prepare, metrics in joint_groups.values():
            # the metrics share one per-document record (StereoSet); any of their keys holds it
            key = metrics[0]
            rows.extend(
                paired_bootstrap_joint(
                    joint,
                    [base_docs[d][key] for d in doc_ids],
                    [new_docs[d][key] for d in doc_ids],
                    metrics,
                    iters=iters,
                    seed=seed,
                    prepare=prepare,
                )
            )
        rows.sort(key=lambda c: c.metric)
        out[task] = rows
    return out
