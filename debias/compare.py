"""Compare two evaluations of the same tasks (base vs debiased), metric by metric, with bootstrap CIs."""

from __future__ import annotations

from typing import Any

from debias.stats import Comparison, paired_bootstrap, paired_bootstrap_joint
from harness_tasks._aggregation import joint_hook


def _by_doc(samples: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {s["doc_id"]: s for s in samples}


def compare(
    base: dict[str, Any], new: dict[str, Any], task_manager, iters: int = 1000, seed: int = 0
) -> dict[str, list[Comparison]]:
    """{task: [Comparison per metric]} for every task both result sets logged samples for.

    Documents are paired by ``doc_id``; a metric a document did not produce (e.g. a subgroup rate on a
    document of another subgroup) is skipped for that document in both runs alike.
    """
    from lm_eval.api.metrics import mean

    out: dict[str, list[Comparison]] = {}
    mean_metrics: dict[str, set[str]] = {}  # task -> metrics aggregated by a plain mean (poolable)
    for task in sorted(set(base.get("samples", {})) & set(new.get("samples", {}))):
        aggregations = task_manager.load([task])["tasks"][task].aggregation()
        mean_metrics[task] = {m for m, agg in aggregations.items() if agg is mean}
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
            hook = joint_hook(aggregate)
            if hook is not None and ids == doc_ids:
                joint, prepare = hook
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
    out.update(_group_comparisons(base, new, mean_metrics, iters, seed))
    return out


def group_leaves(results: dict[str, Any], group: str) -> list[str]:
    """The tasks under ``group``, through nested groups (lm-eval's ``group_subtasks`` tree)."""
    tree = results.get("group_subtasks", {})
    leaves: list[str] = []
    for child in tree.get(group, []):
        leaves.extend(group_leaves(results, child) if child in tree else [child])
    return leaves


def _group_comparisons(
    base: dict[str, Any], new: dict[str, Any], mean_metrics: dict[str, set[str]], iters: int, seed: int
) -> dict[str, list[Comparison]]:
    """CIs for a group's mean-type metric (MMLU's acc) by resampling the pooled documents of its tasks.

    lm-eval's per-subtask samples give no document list for a group, yet its score (e.g. gee_mmlu_lite
    acc) is what a user reads. For a size-weighted group the score is the plain mean over all documents
    of all its tasks; that is only assumed after checking it reproduces lm-eval's group value in both runs.
    """
    from lm_eval.api.metrics import mean

    out: dict[str, list[Comparison]] = {}
    for group in sorted(base.get("group_subtasks", {})):
        leaves = group_leaves(base, group)
        if not leaves or any(leaf not in mean_metrics for leaf in leaves):
            continue
        rows = []
        for metric in sorted(set.intersection(*(mean_metrics[leaf] for leaf in leaves))):
            pooled = []
            for run in (base, new):
                items = [s[metric] for leaf in leaves for s in sorted(run["samples"][leaf], key=_doc_id)]
                reported = run.get("results", {}).get(group, {}).get(f"{metric},none")
                if reported is None or abs(mean(items) - reported) > 1e-9:
                    break
                pooled.append(items)
            else:
                rows.append(paired_bootstrap(mean, pooled[0], pooled[1], metric, iters=iters, seed=seed))
        if rows:
            out[group] = rows
    return out


def _doc_id(sample: dict[str, Any]) -> int:
    return sample["doc_id"]
