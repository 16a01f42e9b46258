"""BBQ data: the upstream files as checked in the manifest, the join, the lite subset, bad rows, the group."""

from __future__ import annotations

import collections
import json
import zlib
from pathlib import Path

import lm_eval
import pytest
import yaml
from lm_eval.api.model import LM

from debias import evaluation
from harness_tasks import _data
from harness_tasks._data import DataFileError
from harness_tasks.bbq import metrics, utils

TASK_DIR = Path(utils.__file__).parent


@pytest.fixture(scope="module")
def real_docs(data_dir):
    return utils.all_examples()


def test_every_bbq_file_is_in_the_manifest_and_checked(real_docs):
    files = _data.manifest()["files"]
    for category in metrics.FILE_CATEGORIES:
        assert utils.category_file(category) in files
    assert utils.METADATA_FILE in files
    assert "bbq/" in _data.LAYOUT_HINT
    assert _data.used_files()[utils.METADATA_FILE].startswith("f36708416b0e")


def test_join_keeps_all_but_the_16_without_target_loc(real_docs):
    assert len(real_docs) == 58492 - 16
    by_category = collections.Counter(d["category_slug"] for d in real_docs)
    assert set(by_category) == set(metrics.CATEGORIES)
    # 736 metadata records for label-based Gender_identity: 64 verbatim repeats and the 16 NA rows
    assert by_category["gender_identity"] == 736 - 64 - 16
    assert by_category["gender_identity_names"] == 5000
    assert all(d["target_loc"] != d["unknown_loc"] for d in real_docs)


def test_lite_subset_is_stratified_and_fixed(real_docs):
    lite = utils.lite_subset(real_docs)
    cells = collections.Counter(
        (d["category_slug"], d["context_condition"], d["question_polarity"]) for d in lite
    )
    assert len(cells) == 15 * 2 * 2 and set(cells.values()) == {utils.LITE_PER_CELL}
    # hash-chosen: the same examples whatever order the documents come in
    again = utils.lite_subset(list(reversed(real_docs)))
    key = lambda d: (d["category"], d["example_id"])  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, lite))
    assert f"the {utils.LITE_PER_CELL} lowest-hash" in (TASK_DIR / "gee_bbq_lite.yaml").read_text()


def test_metric_yaml_lists_match_the_metric_table():
    def metric_names(name: str) -> list[str]:
        text = (TASK_DIR / name).read_text().replace("!function", "")
        return [m["metric"] for m in yaml.safe_load(text)["metric_list"]]

    assert metric_names("_gee_bbq_template_yaml") == list(metrics.OVERALL_METRICS)
    assert metric_names("gee_bbq_lite.yaml") == list(metrics.ALL_METRICS)
    group = yaml.safe_load((TASK_DIR / "gee_bbq.yaml").read_text())
    assert group["task"] == [f"gee_bbq_{c}" for c in metrics.CATEGORIES]
    assert [a["metric"] for a in group["aggregate_metric_list"]] == list(metrics.OVERALL_METRICS)
    assert all(a["weight_by_size"] is False for a in group["aggregate_metric_list"])


class HashLM(LM):
    """Deterministic pseudo log-likelihoods: a varied mix of predictions without a model."""

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return [(-(zlib.crc32("".join(r.args).encode()) % 997) / 100.0, False) for r in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


def test_group_value_is_the_mean_over_category_subtasks(real_docs, tmp_path, monkeypatch):
    # the real rows of the lite subset as the data files, so each of the 15 subtasks loads quickly
    keep = {(d["category"], d["example_id"]) for d in utils.lite_subset(real_docs)}
    (tmp_path / "bbq").mkdir()
    for category in metrics.FILE_CATEGORIES:
        lines = _data.data_file(utils.category_file(category)).read_text().splitlines(keepends=True)
        chosen = [line for line in lines if (category, json.loads(line)["example_id"]) in keep]
        (tmp_path / utils.category_file(category)).write_text("".join(chosen))
    meta = ["category,question_index,example_id,target_loc,label_type"]
    meta += [
        f"{d['category']},{d['question_index']},{d['example_id']},{d['target_loc']},{d['label_type']}"
        for d in real_docs
        if (d["category"], d["example_id"]) in keep
    ]
    (tmp_path / utils.METADATA_FILE).write_text("\n".join(meta) + "\n")
    monkeypatch.setattr(_data, "data_file", lambda rel: tmp_path / rel)

    results = lm_eval.simple_evaluate(
        model=HashLM(), tasks=["gee_bbq"], task_manager=evaluation.task_manager(), log_samples=True
    )
    summary = evaluation.summary(results)
    records = [s["bbq_s_dis"] for c in metrics.CATEGORIES for s in results["samples"][f"gee_bbq_{c}"]]
    assert len(records) == 480
    one_task = metrics.all_metric_values(records)  # what one task over the same documents reports
    for m in metrics.OVERALL_METRICS:
        assert summary["gee_bbq"][m] == pytest.approx(one_task[m]), m
        per_category = [summary[f"gee_bbq_{c}"][m] for c in metrics.CATEGORIES]
        assert summary["gee_bbq"][m] == pytest.approx(sum(per_category) / len(per_category))


# --- bad rows: DataFileError naming file, line and field ------------------------------------------------

GOOD = {
    "example_id": 0,
    "question_index": "1",
    "question_polarity": "neg",
    "context_condition": "ambig",
    "category": "Age",
    "answer_info": {
        "ans0": ["grandfather", "old"],
        "ans1": ["grandson", "nonOld"],
        "ans2": ["Unknown", "unknown"],
    },
    "additional_metadata": {"stereotyped_groups": ["old"]},
    "context": "c",
    "question": "q",
    "ans0": "The grandfather",
    "ans1": "The grandson",
    "ans2": "Unknown",
    "label": 2,
}


def _jsonl(tmp_path, *rows) -> Path:
    path = tmp_path / "Age.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"context_condition": "vague"}, "context_condition"),
        ({"question_polarity": None}, "question_polarity"),
        ({"label": 3}, "label"),
        ({"label": 0}, "label"),  # an ambiguous context whose answer is not UNKNOWN
        ({"ans1": ""}, "ans1"),
        ({"category": "SES"}, "category"),
        ({"example_id": "7"}, "example_id"),
        (
            {"answer_info": {"ans0": ["a", "unknown"], "ans1": ["b", "x"], "ans2": ["c", "unknown"]}},
            "answer_info",
        ),
        ({"answer_info": {"ans0": ["a", "old"]}}, "answer_info"),
    ],
)
def test_bad_example_names_file_line_and_field(tmp_path, change, field):
    path = _jsonl(tmp_path, GOOD, GOOD | change)
    with pytest.raises(DataFileError, match=rf"Age\.jsonl:2: field '{field}'"):
        utils.read_examples(path, "Age")


def test_unparseable_line_names_file_and_line(tmp_path):
    with pytest.raises(DataFileError, match=r"Age\.jsonl:3: not a JSON object"):
        utils.read_examples(_jsonl(tmp_path, GOOD, GOOD, "{oops"), "Age")


def _csv(tmp_path, *records: str) -> Path:
    path = tmp_path / "additional_metadata.csv"
    header = '"category","question_index","example_id","target_loc","label_type","full_cond"'
    path.write_text("\n".join([header, *records]) + "\n")
    return path


def test_metadata_line_numbers_count_quoted_newlines(tmp_path):
    path = _csv(tmp_path, '"Age","1",0,1,"label","two\nlines"', '"Age","1",1,7,"label","x"')
    with pytest.raises(DataFileError, match=r"additional_metadata\.csv:4: field 'target_loc'"):
        utils.read_metadata(path)


def test_metadata_bad_label_type_and_contradicting_repeat(tmp_path):
    with pytest.raises(DataFileError, match=r"csv:2: field 'label_type'"):
        utils.read_metadata(_csv(tmp_path, '"Age","1",0,1,"nickname","x"'))
    same = utils.read_metadata(_csv(tmp_path, '"Age","1",0,1,"label","x"', '"Age","1",0,1,"label","x"'))
    assert same == {("Age", "1", 0): (1, "label")}
    with pytest.raises(DataFileError, match=r"csv:3: field 'target_loc' contradicts"):
        utils.read_metadata(_csv(tmp_path, '"Age","1",0,1,"label","x"', '"Age","1",0,2,"label","x"'))
    assert utils.read_metadata(_csv(tmp_path, '"Age","1",0,NA,"label","x"')) == {
        ("Age", "1", 0): (None, "label")
    }


def test_unknown_category_keyword_is_refused(data_dir):
    with pytest.raises(DataFileError, match="unknown BBQ category 'gender'"):
        utils.load_dataset(category="gender")
