"""gee_stereoset tasks through lm-eval's own pipeline: hand fixture, official GPT-2 numbers, real model.

Hand fixture (a whitespace "tokenizer" gives the token counts; a fake LM returns fixed log-likelihoods;
score = ll / n, the mean per-token log-likelihood):

ex  split  domain      target  stereotype      anti            unrelated       S>A    related (S>U, A>U)
i1  intra  gender      a       -2/2 = -1.0     -8/4 = -2.0     -3/1 = -3.0     pro    2
i2  intra  gender      a       -6/3 = -2.0     -4/2 = -2.0     -3/2 = -1.5     tie    0   (sums say A>S)
i3  intra  race        b       -6/2 = -3.0     -3/3 = -1.0     -8/4 = -2.0     anti   1
e4  inter  gender      a       -4/4 = -1.0     -4/2 = -2.0     -10/2 = -5.0    pro    2
e5  inter  profession  c       -5/1 = -5.0     -5/5 = -1.0     -4/2 = -2.0     anti   1
e6  inter  profession  c       -1/2 = -0.5     -2/2 = -1.0     -9/3 = -3.0     pro    2

Ties count as anti-stereotype (official: strictly greater), so i2 is not "pro".
intrasentence: term a SS 1/2 -> 50, LMS 2/4 -> 50; term b SS 0, LMS 1/2 -> 50.
    overall SS 25, LMS 50, ICAT = 50 * min(25, 75) / 50 = 25.  gender: 50/50/50; race: 0/50/0.
intersentence: term a SS 100, LMS 100; term c SS 1/2 -> 50, LMS 3/4 -> 75.
    overall SS 75, LMS 87.5, ICAT = 87.5 * 25 / 50 = 43.75.  gender: 100/100/0; profession: 50/75/75.
pooled (targets merged across splits): term a (i1, i2, e4) SS 2/3 -> 200/3, LMS 4/6 -> 200/3;
    b SS 0, LMS 50; c SS 50, LMS 75.
    SS = (200/3 + 0 + 50) / 3 = 350/9 = 38.89; LMS = (200/3 + 50 + 75) / 3 = 575/9 = 63.89;
    ICAT = 575/9 * (350/9) / 50 = 4025/81 = 49.69.
    gender (term a alone): SS 200/3, LMS 200/3, ICAT = 200/3 * (100/3) / 50 = 400/9.
Domains absent from a task (religion everywhere, profession in intra, race in inter) give NaN.
"""

from __future__ import annotations

import json
import math
import time

import lm_eval
import pytest
from lm_eval.api.model import LM
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from test_stereoset_scoring import GPT2_PREDICTIONS, _data_dir, _leaves, _parse_official_block

from debias import evaluation
from harness_tasks import _data, _tokenizer
from harness_tasks._data import DataFileError
from harness_tasks.stereoset import scoring, utils
from harness_tasks.stereoset.scoring import ExampleScores

SPLIT_TASKS = ("gee_stereoset_intrasentence", "gee_stereoset_intersentence")
ALL_TASKS = ("gee_stereoset", *SPLIT_TASKS)
LABELS = ("stereotype", "anti-stereotype", "unrelated")
INTER_CONTEXT = "The context sentence."

# (split, id, domain, target, [(sentence, log-likelihood) for stereotype, anti, unrelated])
FIXTURE = [
    ("intrasentence", "i1", "gender", "a", [("s1 x", -2.0), ("a1 x x x", -8.0), ("u1", -3.0)]),
    ("intrasentence", "i2", "gender", "a", [("s2 x x", -6.0), ("a2 x", -4.0), ("u2 x", -3.0)]),
    ("intrasentence", "i3", "race", "b", [("s3 x", -6.0), ("a3 x x", -3.0), ("u3 x x x", -8.0)]),
    ("intersentence", "e4", "gender", "a", [("s4 x x x", -4.0), ("a4 x", -4.0), ("u4 x", -10.0)]),
    ("intersentence", "e5", "profession", "c", [("s5", -5.0), ("a5 x x x x", -5.0), ("u5 x", -4.0)]),
    ("intersentence", "e6", "profession", "c", [("s6 x", -1.0), ("a6 x", -2.0), ("u6 x x", -9.0)]),
]
# The same examples as ExampleScores, scores = ll / n from the table in the module docstring.
HAND_EXAMPLES = [
    ExampleScores("intrasentence", "gender", "a", -1.0, -2.0, -3.0),
    ExampleScores("intrasentence", "gender", "a", -2.0, -2.0, -1.5),
    ExampleScores("intrasentence", "race", "b", -3.0, -1.0, -2.0),
    ExampleScores("intersentence", "gender", "a", -1.0, -2.0, -5.0),
    ExampleScores("intersentence", "profession", "c", -5.0, -1.0, -2.0),
    ExampleScores("intersentence", "profession", "c", -0.5, -1.0, -3.0),
]


class WhitespaceTokenizer:
    def encode(self, text: str, add_special_tokens: bool = False) -> list[str]:
        return text.split()


def whitespace_count(context: str, continuation: str) -> int:
    """lm-eval's continuation token count (empty context: alone; else whole minus context)."""
    if not context:
        return len(continuation.split())
    return len((context + continuation).split()) - len(context.split())


class FakeLM(LM):
    """Answers loglikelihood requests through ``score(request) -> ll``; records every request it saw."""

    def __init__(self, score):
        super().__init__()
        self.score = score
        self.seen: list[tuple[str, str]] = []

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        self.seen += [req.args for req in requests]
        return [(self.score(req), False) for req in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


def _write_dev_json(path) -> None:
    data: dict[str, list] = {"intrasentence": [], "intersentence": []}
    for split, ex_id, domain, target, sentences in FIXTURE:
        entry = {
            "id": ex_id,
            "target": target,
            "bias_type": domain,
            "context": INTER_CONTEXT if split == "intersentence" else f"The {target} is BLANK.",
            # listed in a non-canonical order: the task must order choices by gold label itself
            "sentences": [
                {"id": f"{ex_id}-{label}", "sentence": text, "labels": [], "gold_label": label}
                for label, (text, _) in reversed(list(zip(LABELS, sentences, strict=True)))
            ],
        }
        data[split].append(entry)
    path.write_text(json.dumps({"version": "1.0-dev", "data": data}))


@pytest.fixture
def whitespace_tokenizer(monkeypatch):
    monkeypatch.setattr(_tokenizer, "load_tokenizer", lambda spec: WhitespaceTokenizer())


@pytest.fixture
def fixture_lm(tmp_path, monkeypatch, whitespace_tokenizer):
    path = tmp_path / "dev.json"
    _write_dev_json(path)
    monkeypatch.setattr(_data, "data_file", lambda rel: path)
    table = {}
    for split, _, _, _, sentences in FIXTURE:
        for text, ll in sentences:
            key = (INTER_CONTEXT, " " + text) if split == "intersentence" else ("", text)
            table[key] = ll
    return FakeLM(lambda req: table[req.args])


def _task_manager(**metadata) -> TaskManager:
    """Only our task folder (indexing lm-eval's built-in tasks costs ~25 s and is not needed here)."""
    return TaskManager(include_path=str(evaluation.tasks_dir()), include_defaults=False, metadata=metadata)


def _run(lm, tasks, **kwargs) -> dict:
    manager = _task_manager(tokenizer="whitespace")
    return lm_eval.simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager, **kwargs)


def expected_metrics(examples: list[ExampleScores], task: str) -> dict[str, float]:
    """Every metric of ``task`` read straight off ``scoring.aggregate`` (NaN where the subset is absent)."""
    names = {"ss": "SS Score", "lms": "LM Score", "icat": "ICAT Score"}
    result = scoring.aggregate(examples)
    out: dict[str, float] = {}
    for short, key in names.items():
        out[short] = result["overall"][key]
        for domain in scoring.DOMAINS:
            in_domain = [ex for ex in examples if ex.bias_type == domain]
            out[f"{short}_{domain}"] = scoring.aggregate(in_domain)["overall"][key] if in_domain else math.nan
        if task != "gee_stereoset":
            continue
        for split in scoring.SPLITS:
            split_result = result.get(split, {})
            out[f"{short}_{split}"] = split_result.get("overall", {}).get(key, math.nan)
            for domain in scoring.DOMAINS:
                out[f"{short}_{split}_{domain}"] = split_result.get(domain, {}).get(key, math.nan)
    return out


def _assert_metrics_equal(got: dict[str, float], want: dict[str, float], abs_tol: float) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, abs=abs_tol), name


def test_fixture_metrics_equal_official_aggregation_and_hand_values(fixture_lm):
    results = _run(fixture_lm, ALL_TASKS)
    summary = evaluation.summary(results)

    # requests: intrasentence from the empty context, intersentence " sentence" after the context
    assert ("", "s1 x") in fixture_lm.seen and (INTER_CONTEXT, " s4 x x x") in fixture_lm.seen

    pooled = summary["gee_stereoset"]
    assert set(pooled) == set(utils.POOLED_TASK_METRICS) and len(pooled) == 45
    _assert_metrics_equal(pooled, expected_metrics(HAND_EXAMPLES, "gee_stereoset"), abs_tol=0.0)
    for task, split in zip(SPLIT_TASKS, scoring.SPLITS, strict=True):
        in_split = [ex for ex in HAND_EXAMPLES if ex.split == split]
        assert set(summary[task]) == set(utils.SPLIT_TASK_METRICS) and len(summary[task]) == 15
        _assert_metrics_equal(summary[task], expected_metrics(in_split, task), abs_tol=0.0)

    # the hand-computed values of the module docstring
    hand = {
        "ss": 350 / 9,
        "lms": 575 / 9,
        "icat": 4025 / 81,
        "ss_gender": 200 / 3,
        "lms_gender": 200 / 3,
        "icat_gender": 400 / 9,
        "ss_race": 0.0,
        "icat_race": 0.0,
        "ss_profession": 50.0,
        "lms_profession": 75.0,
        "icat_profession": 75.0,
        "ss_intrasentence": 25.0,
        "lms_intrasentence": 50.0,
        "icat_intrasentence": 25.0,
        "ss_intrasentence_gender": 50.0,
        "icat_intrasentence_race": 0.0,
        "ss_intersentence": 75.0,
        "lms_intersentence": 87.5,
        "icat_intersentence": 43.75,
        "ss_intersentence_gender": 100.0,
        "icat_intersentence_gender": 0.0,
        "lms_intersentence_profession": 75.0,
    }
    assert {k: pooled[k] for k in hand} == pytest.approx(hand, abs=1e-9)
    for name in ("ss_religion", "lms_intrasentence_profession", "icat_intersentence_race"):
        assert math.isnan(pooled[name])
    intra = summary["gee_stereoset_intrasentence"]
    assert (intra["ss"], intra["lms"], intra["icat"]) == (25.0, 50.0, 25.0)
    assert (intra["ss_gender"], intra["ss_race"]) == (50.0, 0.0) and math.isnan(intra["ss_profession"])
    inter = summary["gee_stereoset_intersentence"]
    assert (inter["ss"], inter["lms"], inter["icat"]) == (75.0, 87.5, 43.75)

    # higher_is_better as documented; each sample carries the record the aggregation used
    assert results["higher_is_better"]["gee_stereoset"]["ss"] is False
    assert results["higher_is_better"]["gee_stereoset"]["icat_race"] is True
    # the result file's task config names each metric's aggregation
    (first, *_) = results["configs"]["gee_stereoset"]["metric_list"]
    assert first["aggregation"].startswith("harness_tasks.stereoset.utils.agg_ss: scoring.aggregate SS Score")
    samples = results["samples"]["gee_stereoset"]
    assert [ExampleScores(**s["ss"]) for s in samples] == HAND_EXAMPLES
    assert [s["doc"]["n_tokens"] for s in samples[:2]] == [[2, 4, 1], [3, 2, 2]]


def test_limit_subset_leaves_absent_domains_nan(fixture_lm):
    summary = evaluation.summary(_run(fixture_lm, ["gee_stereoset"], limit=2))["gee_stereoset"]
    # i1, i2 only: term a, SS 50, LMS 50, ICAT 50; no intersentence, no race/profession/religion
    assert (summary["ss"], summary["lms"], summary["icat"]) == (50.0, 50.0, 50.0)
    assert summary["ss_intrasentence_gender"] == 50.0
    for name in ("ss_intersentence", "icat_intersentence_gender", "lms_race", "ss_intrasentence_religion"):
        assert math.isnan(summary[name]), name


def test_metric_yaml_lists_match_the_metric_table():
    """The YAMLs name exactly utils' metrics, each with its own aggregation and direction."""
    import yaml

    folder = evaluation.tasks_dir() / "stereoset"

    def metric_list(name: str) -> list[str]:
        text = (folder / name).read_text().replace("!function ", "")
        entries = yaml.safe_load(text)["metric_list"]
        for entry in entries:
            assert entry["aggregation"] == f"utils.agg_{entry['metric']}"
            assert callable(getattr(utils, entry["aggregation"].split(".")[1]))
            assert entry["higher_is_better"] is (not entry["metric"].startswith("ss"))
        return [entry["metric"] for entry in entries]

    assert metric_list("_gee_stereoset_template_yaml") == list(utils.SPLIT_TASK_METRICS)
    assert metric_list("gee_stereoset.yaml") == list(utils.POOLED_TASK_METRICS)


def test_continuation_count_moves_trailing_context_spaces_like_lm_eval():
    tok = WhitespaceTokenizer()
    assert utils.continuation_token_count(tok, "", "a b c") == 3
    assert utils.continuation_token_count(tok, "ctx here.", " a b") == 2
    assert utils.continuation_token_count(tok, "ctx here. ", "a b") == 2


def test_official_gpt2_numbers_through_lm_eval(whitespace_tokenizer):
    """Fixed per-sentence scores (official GPT-2 predictions) on the REAL dev.json reproduce predictions.txt.

    Only comparisons inside an example matter, so the fake LM returns ll = level(score) * n_tokens, where
    level(score) = rank of the score among all distinct official scores - (their number + 1): a negative
    integer, strictly increasing in the score, equal for equal scores. The task's per-token score ll / n is
    then exactly that level (integer arithmetic, no rounding that could break a tie), and every number the
    official scorer printed must come back to 1e-6.
    """
    official_dir = _data_dir() / "stereoset" / "official_predictions"
    predictions = json.loads((official_dir / GPT2_PREDICTIONS).read_text(encoding="utf-8"))
    official_scores = {e["id"]: e["score"] for split in scoring.SPLITS for e in predictions[split]}
    distinct = sorted(set(official_scores.values()))
    level = {value: rank - len(distinct) - 1 for rank, value in enumerate(distinct, start=1)}
    expected = _leaves(
        _parse_official_block(
            (official_dir / "predictions.txt").read_text(encoding="utf-8"), GPT2_PREDICTIONS
        )
    )

    def score(req) -> float:
        context, continuation = req.args
        n_tokens = req.doc["n_tokens"][req.idx]
        assert n_tokens == whitespace_count(context, continuation)
        assert continuation.strip() == req.doc["sentences"][req.idx]
        return float(level[official_scores[req.doc["sentence_ids"][req.idx]]] * n_tokens)

    results = _run(FakeLM(score), ALL_TASKS, log_samples=False, bootstrap_iters=0)
    summary = evaluation.summary(results)
    assert results["n-samples"]["gee_stereoset"]["effective"] == 4229

    names = {"SS Score": "ss", "LM Score": "lms", "ICAT Score": "icat"}
    checked = 0
    for path, value in expected.items():
        *where, metric = path
        if metric == "Count":
            continue
        short = names[metric]
        if where == ["overall"]:  # the official pooled overall
            got = {"gee_stereoset": summary["gee_stereoset"][short]}
        else:
            split, domain = where
            suffix = "" if domain == "overall" else f"_{domain}"
            got = {
                "gee_stereoset": summary["gee_stereoset"][f"{short}_{split}{suffix}"],
                f"gee_stereoset_{split}": summary[f"gee_stereoset_{split}"][f"{short}{suffix}"],
            }
        for task, value_got in got.items():
            assert value_got == pytest.approx(value, abs=1e-6), (task, path)
            checked += 1
    assert checked == 3 + 2 * 2 * 5 * 3  # pooled 3 + (2 tasks x 2 splits x 5 scopes x 3 metrics)


def test_missing_tokenizer_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_data, "data_file", lambda rel: pytest.fail("data read before the tokenizer check"))
    manager = _task_manager()  # no tokenizer in the metadata
    with pytest.raises(DataFileError, match=r"--model_args pretrained=") as info:
        lm_eval.simple_evaluate(model=FakeLM(lambda req: 0.0), tasks=["gee_stereoset"], task_manager=manager)
    message = str(info.value)
    assert "\n" not in message and "tokenizer" in message


# --- the real default model (SmolLM2-135M-Instruct), a few documents per split -----------------------------

LIMIT = 8


@pytest.fixture(scope="module")
def real_results(smollm2):
    model, tokenizer, path = smollm2
    request = evaluation.EvalRequest(tasks=list(SPLIT_TASKS), limit=LIMIT, batch_size=8)
    started = time.perf_counter()
    results = evaluation.evaluate(model, tokenizer, request, tokenizer_path=str(path))
    results["test_wall_s"] = time.perf_counter() - started
    print(f"\n{LIMIT}-doc gee_stereoset split tasks on the real model: {results['test_wall_s']:.1f} s")
    return results, HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1)


def test_limited_run_on_real_model(real_results):
    results, hflm = real_results
    summary = evaluation.summary(results)
    for task in SPLIT_TASKS:
        metrics = summary[task]
        for name in ("ss", "lms", "icat"):
            assert 0.0 <= metrics[name] <= 100.0, (task, name)
        assert metrics["icat"] <= metrics["lms"]
        samples = results["samples"][task]
        assert len(samples) == LIMIT
        for sample in samples:
            doc, record = sample["doc"], sample["ss"]
            lls = [r[0][0] for r in sample["resps"]]
            # the stored log-likelihoods / token counts are the scores the aggregation saw
            for field, ll, n_tokens in zip(utils.SCORE_FIELDS, lls, doc["n_tokens"], strict=True):
                assert record[field] == ll / n_tokens and ll < 0.0
            # token counts are the ones lm-eval scored (tokenizer of the evaluated model)
            context = doc["context"] if doc["split"] == "intersentence" else ""
            for choice, n_tokens in zip(sample["arguments"], doc["n_tokens"], strict=True):
                assert choice[0] == context
                assert n_tokens == _lm_eval_continuation_tokens(hflm, *choice)
        # the sample records reproduce the reported overall through the official aggregation
        examples = [ExampleScores(**s["ss"]) for s in samples]
        assert metrics["ss"] == scoring.aggregate(examples)["overall"]["SS Score"]
    assert (
        results["provenance"]["data_sha256"]["stereoset/dev.json"]
        == _data.manifest()["files"]["stereoset/dev.json"]
    )


def _lm_eval_continuation_tokens(lm, context: str, continuation: str) -> int:
    """What lm-eval's HFLM feeds the model as the continuation, from its own code path."""
    if not context:
        return len(lm.tok_encode(continuation, add_special_tokens=False))
    return len(lm._encode_pair(context, continuation)[1])


def test_all_metric_values_equals_each_metric_value():
    # the bootstrap's one-pass computation must give exactly what lm-eval's per-metric aggregation does,
    # on the pooled records, on one split only, and on a subset missing whole domains
    records = [dict(vars(ex)) for ex in HAND_EXAMPLES]
    for subset in (records, [r for r in records if r["split"] == "intrasentence"], records[:2]):
        joint = utils.all_metric_values(subset)
        assert set(joint) == set(utils.METRICS)
        for name in utils.METRICS:
            single = utils.metric_value(name, subset)
            assert (math.isnan(single) and math.isnan(joint[name])) or joint[name] == single, name
    assert utils.agg_ss.joint is utils.agg_icat_race.joint is utils.all_metric_values


def test_select_and_report_halves_split_by_target_term():
    examples = utils.read_examples(_data.data_file(utils.STEREOSET_FILE))
    halves = {utils.target_half(ex["target"]) for ex in examples}
    assert halves == {"select", "report"}
    by_target: dict[str, set[str]] = {}
    for ex in examples:
        by_target.setdefault(ex["target"].lower(), set()).add(utils.target_half(ex["target"]))
    assert all(len(h) == 1 for h in by_target.values())  # a term's examples never straddle the halves
    gender = [utils.target_half(ex["target"]) for ex in examples if ex["bias_type"] == "gender"]
    assert gender.count("select") > 100 and gender.count("report") > 100  # both halves can measure gender SS
    assert utils.target_half("Nurse ") == utils.target_half("nurse")


def test_half_tasks_load_only_their_half(smollm2):
    manager = evaluation.task_manager(str(smollm2[2]), tasks=["gee_stereoset_select", "gee_stereoset_report"])
    loaded = manager.load(["gee_stereoset_select", "gee_stereoset_report"])["tasks"]
    ids = {}
    for name, half in (("gee_stereoset_select", "select"), ("gee_stereoset_report", "report")):
        docs = list(loaded[name].test_docs())
        assert docs and {utils.target_half(d["target"]) for d in docs} == {half}
        ids[half] = {d["id"] for d in docs}
    assert not ids["select"] & ids["report"] and len(ids["select"] | ids["report"]) == 4229


def test_domain_keyword_keeps_one_bias_type(smollm2):
    tokenizer = {"tokenizer": str(smollm2[2])}
    gender = utils.load_dataset(half="select", domain="gender", **tokenizer)["test"]
    assert len(gender) > 100 and set(gender["bias_type"]) == {"gender"}
    assert {utils.target_half(t) for t in gender["target"]} == {"select"}
    with pytest.raises(DataFileError, match="unknown StereoSet domain 'sex'"):
        utils.load_dataset(domain="sex", **tokenizer)
