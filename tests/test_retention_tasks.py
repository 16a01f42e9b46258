"""Retention tasks (gee_mmlu*, gee_gsm8k*): local data in the HF schema, lm-eval's own prompts and metrics.

The reference for "lm-eval's own" is always the installed lm-eval: its built-in ``mmlu_anatomy`` and
``gsm8k`` (the standard 5-shot GSM8K) configs, loaded from its YAML files with only the dataset swapped for
the same local docs.
Hand-computed numbers come from fixtures small enough to check with pencil and paper.
"""

from __future__ import annotations

import collections
import csv
import json
import math
import random
import re
from pathlib import Path

import lm_eval
import pytest
from lm_eval.api.model import LM
from lm_eval.api.task import ConfigurableTask
from lm_eval.defaults import DEFAULT_OTHER_SEED
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks._yaml_loader import load_yaml

from debias import evaluation
from harness_tasks import _data
from harness_tasks._data import DataFileError
from harness_tasks.retention import generate, utils

RETENTION = Path(utils.__file__).resolve().parent
LM_EVAL_TASKS = generate.lm_eval_tasks_dir()
# The only config keys our tasks may differ in from lm-eval's: the data source and the names.
DATA_AND_NAME_KEYS = {"dataset_path", "dataset_name", "custom_dataset", "dataset_kwargs", "task", "tag"}


@pytest.fixture(scope="module")
def task_manager():
    return evaluation.task_manager()


def _our_task(task_manager, name: str) -> ConfigurableTask:
    return task_manager.load(name)["tasks"][name]


def _builtin_task(yaml_rel: str, dataset, name: str) -> ConfigurableTask:
    """lm-eval's built-in task config from its own YAML, reading ``dataset`` instead of the hub."""
    config = load_yaml(LM_EVAL_TASKS / yaml_rel)
    config.pop("tag", None)
    config.update(task=name, dataset_path="", dataset_name="", custom_dataset=lambda **_: dataset)
    return ConfigurableTask(config=config)


def _builtin_subjects() -> set[str]:
    return {
        load_yaml(p, resolve_func=False, recursive=False)["dataset_name"]
        for p in (LM_EVAL_TASKS / "mmlu" / "default").glob("mmlu_*.yaml")
    }


# ---------------------------------------------------------------- 1. data conversion on the real files


def test_mmlu_real_files_convert_to_hf_schema(data_dir):
    subjects = utils.mmlu_subjects()
    assert len(subjects) == 57
    assert set(subjects) == _builtin_subjects()
    total = 0
    answers: collections.Counter[int] = collections.Counter()
    for subject in subjects:
        test = utils.mmlu_rows(subject, "test")
        total += len(test)
        answers.update(row["answer"] for row in test)
        assert all(row["subject"] == subject and len(row["choices"]) == 4 for row in test)
        assert len(utils.mmlu_rows(subject, "dev")) == 5
    assert total == 14042
    # A 3,222 / B 3,462 / C 3,582 / D 3,776 (PROVENANCE.md), as 0-3
    assert answers == {0: 3222, 1: 3462, 2: 3582, 3: 3776}
    dataset = utils.load_mmlu("anatomy", ["dev", "test"])
    assert dataset["test"].num_rows == 135 and dataset["dev"].num_rows == 5
    assert dataset["test"].features["answer"].names == ["A", "B", "C", "D"]
    first = dataset["test"][0]
    assert first["question"].startswith("A lesion causing compression of the facial nerve")
    assert set(first) == {"question", "subject", "choices", "answer"}


def test_mmlu_reader_keeps_quoted_newlines_and_maps_letters(tmp_path):
    path = tmp_path / "x_test.csv"
    path.write_bytes(b'"Two\nlines?",a,b,"c, d",e,C\r\nPlain?,1,2,3,4,A\r\n')
    rows = utils.read_mmlu_csv(path, "x")
    assert rows == [
        {"question": "Two\nlines?", "subject": "x", "choices": ["a", "b", "c, d", "e"], "answer": 2},
        {"question": "Plain?", "subject": "x", "choices": ["1", "2", "3", "4"], "answer": 0},
    ]
    path.write_text("Q,1,2,3,4,A\nQ2,1,2,3,E\n")
    with pytest.raises(DataFileError, match=r"x_test\.csv: record 2 has 5 fields"):
        utils.read_mmlu_csv(path, "x")
    path.write_text("Q,1,2,3,4,A\nQ2,1,2,3,4,E\n")
    with pytest.raises(DataFileError, match=r"record 2: answer is 'E'"):
        utils.read_mmlu_csv(path, "x")


def test_gsm8k_real_file_and_gold_as_builtin_task_parses_it(data_dir, task_manager):
    rows = utils.gsm8k_rows("test")
    assert len(rows) == 1319
    assert len(utils.gsm8k_rows("train")) == 7473  # the few-shot pool
    ours = _our_task(task_manager, "gee_gsm8k")
    builtin = _builtin_task("gsm8k/gsm8k.yaml", utils.load_gsm8k(["test", "train"]), "ref_gsm8k")
    golds = [ours.doc_to_target(doc) for doc in ours.eval_docs]
    assert golds == [builtin.doc_to_target(doc) for doc in builtin.eval_docs]
    # gsm8k's gold is the whole worked solution; its metric keeps what follows "#### " (regexes_to_ignore)
    assert golds == [row["answer"] for row in rows]
    finals = [g.split("####")[-1].strip() for g in golds]
    assert finals[0] == "18"
    assert all(re.fullmatch(r"-?\d+", f.replace(",", "")) for f in finals)
    assert sum("," in f for f in finals) == 14  # thousands separators (PROVENANCE.md)


# ---------------------------------------------------------------- 2. prompts identical to lm-eval's


def test_generated_yamls_are_up_to_date():
    stale = generate.differences(generate.render())
    assert not stale, f"run `python -m harness_tasks.retention.generate`: {stale}"


@pytest.mark.parametrize(
    ("ours", "builtin"),
    [
        ("mmlu/gee_mmlu_anatomy.yaml", "mmlu/default/mmlu_anatomy.yaml"),
        ("mmlu_lite/gee_mmlu_lite_world_religions.yaml", "mmlu/default/mmlu_world_religions.yaml"),
        ("gee_gsm8k.yaml", "gsm8k/gsm8k.yaml"),
        ("gee_gsm8k_lite.yaml", "gsm8k/gsm8k.yaml"),
    ],
)
def test_configs_differ_from_lm_eval_only_in_data_source_and_names(ours, builtin):
    mine = load_yaml(RETENTION / ours, resolve_func=False)
    theirs = load_yaml(LM_EVAL_TASKS / builtin, resolve_func=False)
    changed = {k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)}
    assert changed <= DATA_AND_NAME_KEYS
    assert mine["metadata"]["version"] == theirs["metadata"]["version"]


def test_mmlu_prompts_equal_builtin_mmlu_anatomy(task_manager):
    ours = _our_task(task_manager, "gee_mmlu_anatomy")
    builtin = _builtin_task("mmlu/default/mmlu_anatomy.yaml", ours.dataset, "ref_mmlu_anatomy")
    for doc in list(ours.eval_docs)[:3]:
        for shots in (0, 5):
            assert ours.fewshot_context(doc, shots) == builtin.fewshot_context(doc, shots)
        assert ours.doc_to_choice(doc) == builtin.doc_to_choice(doc) == ["A", "B", "C", "D"]
        assert ours.doc_to_target(doc) == builtin.doc_to_target(doc)
    # and independently of lm-eval, the documented MMLU prompt for the first anatomy question
    with open(_data.data_file("mmlu/test/anatomy_test.csv"), newline="", encoding="utf-8") as fh:
        question, *choices, _answer = next(csv.reader(fh))
    expected = (
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        + question.strip()
        + "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", choices, strict=True))
        + "\nAnswer:"
    )
    assert ours.fewshot_context(ours.eval_docs[0], 0) == expected
    five_shot = ours.fewshot_context(ours.eval_docs[0], 5)
    assert five_shot.count("\nAnswer:") == 6 and five_shot.endswith(expected.split("\n\n", 1)[1])


def test_gsm8k_prompt_equals_builtin_gsm8k(task_manager):
    # Every train row as a rendered exemplar ("Question: ...\nAnswer: <worked solution>", then "\n\n").
    exemplars = {f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in utils.gsm8k_rows("train")}
    for name in ("gee_gsm8k", "gee_gsm8k_lite"):
        ours = _our_task(task_manager, name)
        builtin = _builtin_task("gsm8k/gsm8k.yaml", ours.dataset, "ref_gsm8k")
        assert ours.config.num_fewshot == builtin.config.num_fewshot == 5
        assert ours.config.generation_kwargs == builtin.config.generation_kwargs
        # lm-eval samples each question's exemplars from the train split with one Random per task, which
        # simple_evaluate seeds (fewshot_random_seed, default DEFAULT_OTHER_SEED) and which then advances
        # from question to question: seed both tasks as it does and render the same docs in the same order.
        for task in (ours, builtin):
            task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)
        shot_parts = []
        for doc in list(ours.eval_docs)[:2]:
            context = ours.fewshot_context(doc, ours.config.num_fewshot)
            assert context == builtin.fewshot_context(doc, builtin.config.num_fewshot)
            question = f"Question: {doc['question']}\nAnswer:"
            assert context.endswith(question)
            shots = context.removesuffix(question)
            assert shots.count("#### ") == 5  # exactly 5 worked solutions ...
            used = [ex for ex in exemplars if ex in shots]
            assert len(used) == 5 and sum(map(len, used)) == len(shots)  # ... and nothing but train rows
            shot_parts.append(shots)
        assert shot_parts[0] != shot_parts[1]  # drawn afresh for every question


def test_task_names_are_prefixed_and_shadow_nothing_in_lm_eval(task_manager):
    ours = {
        name
        for name, entry in task_manager.task_index.items()
        if entry.yaml_path and RETENTION in Path(entry.yaml_path).parents
    } | {name for name, entry in task_manager.task_index.items() if name.startswith("gee_mmlu")}
    assert {"gee_mmlu", "gee_mmlu_lite", "gee_gsm8k", "gee_gsm8k_lite"} <= ours
    lite_names = [n for n in ours if re.fullmatch(r"gee_mmlu_lite_[a-z_]+", n)]
    assert len(lite_names) == 57 + 4 + 4  # subject tasks, category groups, category tags
    assert all(name.startswith("gee_") for name in ours)
    builtin_text = "\n".join(p.read_text(errors="replace") for p in LM_EVAL_TASKS.rglob("*.yaml"))
    assert not re.search(r"\bgee_", builtin_text)


# ---------------------------------------------------------------- 3. lite subsets


def test_mmlu_lite_is_the_same_k_rows_per_subject_every_time(data_dir):
    k = generate.MMLU_LITE_K
    for subject in utils.mmlu_subjects():
        full = utils.mmlu_rows(subject)
        first, second = utils.mmlu_rows(subject, lite_k=k), utils.mmlu_rows(subject, lite_k=k)
        assert first == second and len(first) == k
        positions = [full.index(row) for row in first]
        assert positions == sorted(positions)  # file order kept
    text = (RETENTION / "mmlu_lite" / "gee_mmlu_lite_anatomy.yaml").read_text()
    assert f"lite_k: {k}\n" in text


def test_gsm8k_lite_is_fixed(data_dir, task_manager):
    n = generate.GSM8K_LITE_N
    rows = utils.gsm8k_rows(lite_n=n)
    assert rows == utils.gsm8k_rows(lite_n=n) and len(rows) == n
    assert list(_our_task(task_manager, "gee_gsm8k_lite").eval_docs) == rows


def test_stable_subset_depends_on_content_not_order():
    rows = [{"question": f"q{i}"} for i in range(50)]
    chosen = [rows[i] for i in utils.stable_subset(rows, 7)]
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    chosen_after_shuffle = [shuffled[i] for i in utils.stable_subset(shuffled, 7)]
    assert sorted(map(str, chosen)) == sorted(map(str, chosen_after_shuffle))
    assert utils.stable_subset(rows[:3], 7) == [0, 1, 2]  # fewer rows than k: all of them


# ---------------------------------------------------------------- 4. lm-eval's pipeline, hand-computed


class PrefersA(LM):
    """Answers every MMLU question 'A' (the continuation ' A' is the most likely)."""

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return [(0.0 if req.args[1] == " A" else -1.0, True) for req in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


def _mmlu_fixture(tmp_path, answers: dict[str, str]) -> dict[str, Path]:
    """Every subject gets one question with answer B unless ``answers`` says otherwise; dev has 5 rows."""
    files = {}
    for subject in utils.mmlu_subjects():
        for split, letters in (("test", answers.get(subject, "B")), ("dev", "ABCDA")):
            path = tmp_path / f"{subject}_{split}.csv"
            path.write_text("".join(f"{subject} {split} q{i}?,w,x,y,z,{a}\n" for i, a in enumerate(letters)))
            files[f"mmlu/{split}/{subject}_{split}.csv"] = path
    return files


def test_mmlu_group_is_size_weighted_like_lm_eval(tmp_path, monkeypatch, task_manager):
    # anatomy: 4 questions AAAB -> 3/4; astronomy: AA -> 2/2; the other 55 subjects: one 'B' -> 0/1.
    # stem (19 subjects): (3 + 2) / (4 + 2 + 17) = 5/23; all: 5 / (4 + 2 + 55) = 5/61
    # (an unweighted mean over subjects would give (0.75 + 1) / 57 instead).
    files = _mmlu_fixture(tmp_path, {"anatomy": "AAAB", "astronomy": "AA"})
    monkeypatch.setattr(_data, "data_file", lambda rel: files[rel])
    results = lm_eval.simple_evaluate(model=PrefersA(), tasks=["gee_mmlu"], task_manager=task_manager)
    acc = {task: metrics["acc,none"] for task, metrics in results["results"].items()}
    assert acc["gee_mmlu_anatomy"] == pytest.approx(0.75)
    assert acc["gee_mmlu_astronomy"] == pytest.approx(1.0)
    assert acc["gee_mmlu_stem"] == pytest.approx(5 / 23)
    assert acc["gee_mmlu_humanities"] == pytest.approx(0.0)
    assert acc["gee_mmlu"] == pytest.approx(5 / 61)
    assert results["n-samples"]["gee_mmlu_anatomy"]["effective"] == 4
    assert str(results["versions"]["gee_mmlu"]) == "2"  # lm-eval records group versions as text
    assert results["versions"]["gee_mmlu_anatomy"] == 1.0


def test_mmlu_lite_group_keeps_k_per_subject(tmp_path, monkeypatch, task_manager):
    k = generate.MMLU_LITE_K
    # anatomy has k + 5 questions, all 'A': its lite task keeps k of them, all right: k / (k + 56)
    files = _mmlu_fixture(tmp_path, {"anatomy": "A" * (k + 5)})
    monkeypatch.setattr(_data, "data_file", lambda rel: files[rel])
    results = lm_eval.simple_evaluate(model=PrefersA(), tasks=["gee_mmlu_lite"], task_manager=task_manager)
    assert results["n-samples"]["gee_mmlu_lite_anatomy"]["effective"] == k
    assert results["results"]["gee_mmlu_lite"]["acc,none"] == pytest.approx(k / (k + 56))


class CannedAnswers(LM):
    def __init__(self, by_question: dict[str, str]):
        super().__init__()
        self.by_question = by_question
        self.gen_kwargs: list[dict] = []
        self.contexts: list[str] = []

    def generate_until(self, requests, disable_tqdm: bool = False):
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            self.gen_kwargs.append(gen_kwargs)
            self.contexts.append(context)
            question = context.rsplit("Question: ", 1)[1].removesuffix("\nAnswer:")
            out.append(self.by_question[question])
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


def test_gsm8k_strict_and_flexible_match_by_hand(tmp_path, monkeypatch, task_manager):
    # The gold is the whole solution; exact_match drops "," "$" everything up to "#### " and a final "."
    # from gold and extraction alike, so each gold below counts as its final number.
    # gold   generation                          strict ("#### N", first)  flexible (last number)
    # 18     "... = 18 dollars.\n#### 18"        18 -> 1                   18 -> 1
    # 3      "It takes 2 + 1 = 3 bolts."         none -> 0                 3 -> 1
    # 1,200  "That is $1,200.\n#### $1,200"      none ($) -> 0             $1,200 -> 1
    # 5      "3 + 4 = 7\n#### 7"                 7 -> 0                    7 -> 0
    # 12     "#### 12\nCheck: 3 + 4 = 7."        12 -> 1                   7. -> 0
    # strict 2/5 = 0.4, flexible 3/5 = 0.6
    cases = [
        ("Q1?", "9 * 2 = 18\n#### 18", " She makes 9 * 2 = 18 dollars.\n#### 18\n\n"),
        ("Q2?", "2 + 1 = 3\n#### 3", " It takes 2 + 1 = 3 bolts.\n\n"),
        ("Q3?", "100 * 12 = 1,200\n#### 1,200", " That is $1,200.\n#### $1,200\n\n"),
        ("Q4?", "2 + 3 = 5\n#### 5", " 3 + 4 = 7\n#### 7\n\n"),
        ("Q5?", "3 * 4 = 12\n#### 12", " #### 12\nCheck: 3 + 4 = 7.\n\n"),
    ]
    test_path, train_path = tmp_path / "test.jsonl", tmp_path / "train.jsonl"
    test_path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a, _ in cases))
    # the few-shot pool: exactly 5 rows, so every prompt holds all of them (in a seeded order)
    train_path.write_text(
        "".join(
            json.dumps({"question": f"T{i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"}) + "\n"
            for i in range(1, 6)
        )
    )
    files = {"gsm8k/test.jsonl": test_path, "gsm8k/train.jsonl": train_path}
    monkeypatch.setattr(_data, "data_file", lambda rel: files[rel])
    lm = CannedAnswers({q: gen for q, _, gen in cases})
    results = lm_eval.simple_evaluate(model=lm, tasks=["gee_gsm8k"], task_manager=task_manager)
    metrics = results["results"]["gee_gsm8k"]
    assert metrics["exact_match,strict-match"] == pytest.approx(0.4)
    assert metrics["exact_match,flexible-extract"] == pytest.approx(0.6)
    assert results["versions"]["gee_gsm8k"] == 3.0
    assert len(lm.contexts) == len(cases)
    for context in lm.contexts:  # 5 shots, all from the train file
        assert context.count("#### ") == 5 and all(f"Question: T{i}?\n" in context for i in range(1, 6))
    for kwargs in lm.gen_kwargs:  # lm-eval's generation settings reach the model
        assert kwargs["until"] == ["Question:", "</s>", "<|im_end|>"] and kwargs["do_sample"] is False


# ---------------------------------------------------------------- 5. the real default model


def test_mmlu_lite_on_real_model_matches_builtin_scoring(smollm2):
    model, tokenizer, path = smollm2
    request = evaluation.EvalRequest(tasks=["gee_mmlu_lite_anatomy"], limit=4, batch_size=4)
    results = evaluation.evaluate(model, tokenizer, request, tokenizer_path=str(path))
    samples = results["samples"]["gee_mmlu_lite_anatomy"]
    assert len(samples) == 4
    for sample in samples:
        lls = [resp[0][0] for resp in sample["resps"]]
        assert sample["acc"] == (1.0 if lls.index(max(lls)) == sample["target"] else 0.0)
    assert 0.0 <= results["results"]["gee_mmlu_lite_anatomy"]["acc,none"] <= 1.0
    provenance = results["provenance"]
    assert provenance["data_sha256"]["mmlu/test/anatomy_test.csv"].startswith("966dfd5c")
    assert provenance["task_versions"]["gee_mmlu_lite_anatomy"] == 1.0
    # lm-eval's built-in mmlu_anatomy on the same 4 docs gives the same log-likelihoods
    lite = utils.load_mmlu("anatomy", ["dev", "test"], lite_k=generate.MMLU_LITE_K)
    reference = lm_eval.simple_evaluate(
        model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4),
        tasks=[_builtin_task("mmlu/default/mmlu_anatomy.yaml", lite, "ref_mmlu_anatomy")],
        limit=4,
        log_samples=True,
    )
    theirs = reference["samples"]["ref_mmlu_anatomy"]
    for mine, ref in zip(samples, theirs, strict=True):
        assert mine["arguments"] == ref["arguments"]
        assert [r[0][0] for r in mine["resps"]] == pytest.approx([r[0][0] for r in ref["resps"]], abs=1e-4)


@pytest.mark.slow
def test_gsm8k_lite_one_question_on_real_model(smollm2):
    model, tokenizer, path = smollm2
    request = evaluation.EvalRequest(tasks=["gee_gsm8k_lite"], limit=1, batch_size=1)
    results = evaluation.evaluate(model, tokenizer, request, tokenizer_path=str(path))
    metrics = results["results"]["gee_gsm8k_lite"]
    assert {metrics["exact_match,strict-match"], metrics["exact_match,flexible-extract"]} <= {0.0, 1.0}
    samples = results["samples"]["gee_gsm8k_lite"]  # the one question, logged once per filter
    assert sorted(sample["filter"] for sample in samples) == ["flexible-extract", "strict-match"]
    assert samples[0]["arguments"][0][1]["until"] == ["Question:", "</s>", "<|im_end|>"]
    prompt = samples[0]["arguments"][0][0]
    assert (
        prompt.endswith("\nAnswer:") and prompt.count("#### ") == 5
    )  # the 5-shot prompt: 5 worked solutions
    assert results["provenance"]["task_versions"]["gee_gsm8k_lite"] == 3.0


def test_gsm8k_perplexity_task_pools_loglikelihood_over_words_and_bytes(data_dir, task_manager):
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity

    task = _our_task(task_manager, "gee_gsm8k_ppl")
    docs = list(task.eval_docs)
    assert len(docs) == 200 and docs == utils.gsm8k_rows(lite_n=200)
    assert task.doc_to_target(docs[0]) == docs[0]["question"] + "\n" + docs[0]["answer"]
    # two documents by hand: "a b\nc" (3 words, 5 bytes) at log-likelihood -6, "dé" (1 word, 3 bytes) at -2
    first = utils.perplexity_results({"question": "a b", "answer": "c"}, [-6.0])
    second = utils.perplexity_results({"question": "d", "answer": "é"}, [-2.0])
    assert first["word_perplexity"] == (-6.0, 3) and first["byte_perplexity"] == (-6.0, 5)
    assert second["bits_per_byte"] == (-2.0, 4)  # "d\né": 1 + 1 + 2 bytes
    assert second["word_perplexity"] == (-2.0, 2)
    words = [first["word_perplexity"], second["word_perplexity"]]
    assert weighted_perplexity(words) == pytest.approx(math.exp(8 / 5))
    byte_items = [first["bits_per_byte"], second["bits_per_byte"]]
    assert bits_per_byte(byte_items) == pytest.approx(8 / 9 / math.log(2))


def test_perplexity_of_a_broken_model_is_inf_not_a_crash():
    from lm_eval.api.metrics import weighted_perplexity as lm_eval_weighted_perplexity

    items = [(-6.0, 3), (-2.0, 2)]
    assert utils.weighted_perplexity(items) == pytest.approx(lm_eval_weighted_perplexity(items))
    assert utils.weighted_perplexity([(-1e6, 10)]) == math.inf


def test_neutral_perplexity_task_reads_only_the_anchor_held_out_side(data_dir, task_manager):
    """The selection's perplexity guard scores texts no anchor trains on and no retention task scores."""
    from debias import anchor

    task = _our_task(task_manager, "gee_neutral_ppl_select")
    docs = [doc["text"] for doc in task.eval_docs]
    train, heldout = anchor.split_texts(anchor.gsm8k_mmlu_texts(), anchor.BUILTIN)
    assert len(docs) == len(set(docs)) == 128
    # the anchor reads GSM8K without calculator annotations; the guard keeps them, as gee_gsm8k_ppl does
    as_anchor_reads = {utils._CALCULATOR.sub("", doc) for doc in docs}
    assert as_anchor_reads <= set(heldout) and not as_anchor_reads & set(train)
    assert any("<<" in doc for doc in docs)
    train_documents = {utils.gsm8k_solution_text(row) for row in utils.gsm8k_rows("train")}
    assert sum(doc in train_documents for doc in docs) == sum("####" in doc for doc in docs) > 100
    # both sources are sampled (a prefix would be GSM8K only), and no GSM8K test question is among them
    assert any(doc.split("\n")[-1].startswith("D. ") for doc in docs)
    assert any("####" in doc for doc in docs)
    test_questions = {row["question"] for row in utils.gsm8k_rows("test")}
    assert not {doc.split("\n")[0] for doc in docs} & test_questions
    assert task.doc_to_target(task.eval_docs[0]) == docs[0]
    # pooled like gee_gsm8k_ppl, over the text's own words and bytes
    assert utils.perplexity_results({"text": "a b\nc"}, [-6.0])["word_perplexity"] == (-6.0, 3)
