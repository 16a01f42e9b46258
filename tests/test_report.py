"""The HTML report: every section, escaping, CIs equal to a hand-enumerated bootstrap, errors, browser."""

from __future__ import annotations

import json
import re

import pytest
from report_fixtures import SCRIPT, crows_samples, default_run, make_run, winogender_samples

import cli
from reports import charts, render


def _html(run_dirs) -> str:
    return render.render(run_dirs)


def test_report_has_every_section_and_chart(tmp_path):
    html = _html([default_run(tmp_path)])
    for section in render.SECTIONS:
        assert f'<section id="{section}">' in html, section
    # trade-off (SS x LMS, CrowS x LMS), winogender scatter, crows bars, stereoset bars, entropy bars,
    # training curves (loss, gap, lambda)
    assert html.count('<svg class="chart"') >= 9
    assert "Winogender: pronoun preference vs occupation statistics" in html
    assert "nurse" in html and "engineer" in html  # occupation table / tooltips
    assert "stopped early: yes" in html and "0.0500 → 0.0050 nats" in html  # training summary
    assert "crows_pairs/crows_pairs_anonymized.csv" in html and "ab" * 32 in html  # data provenance
    assert "<script" not in html.lower()  # self-contained, no script at all


def test_dataset_and_config_strings_are_escaped(tmp_path):
    html = _html([default_run(tmp_path, data_path=f"prompts{SCRIPT}.jsonl")])
    assert SCRIPT not in html
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    # a CrowS sentence (examples table), a Winogender occupation (table + SVG tooltip), a config value
    assert f"the {escaped} people are bad" in html
    assert f'<td class="l">{escaped}</td>' in html
    assert f"prompts{escaped}.jsonl" in html
    svg_titles = re.findall(r"<title>([^<]*)</title>", html)
    assert any(escaped in t for t in svg_titles)


def test_ci_in_report_matches_hand_enumerated_bootstrap(tmp_path):
    # CrowS pct_stereotype over 2 pairs: base [0, 1] -> debiased [1, 1]. A resample of the 2 pairs is
    # (0,0) w.p. 1/4: Δ = 1 - 0 = 1; (1,1) w.p. 1/4: Δ = 1 - 1 = 0; mixed w.p. 1/2: Δ = 1 - 0.5 = 0.5.
    # Each tail outcome has probability 25 % > 2.5 %, so the 95 % interval is exactly [0, 1]; Δ = +0.5,
    # and pct_stereotype moved away from 0.5, so it is worse (but not beyond the CI, which includes 0).
    run = default_run(tmp_path)
    comparison = json.loads((run / "results" / "comparison.json").read_text())
    (row,) = [c for c in comparison["tasks"]["gee_crows_pairs"] if c["metric"] == "pct_stereotype"]
    assert (row["base"], row["new"], row["delta"]) == (0.5, 1.0, 0.5)
    assert (row["ci_low"], row["ci_high"]) == (0.0, 1.0)
    html = _html([run])
    line = re.search(
        r"<td class=\"l\">gee_crows_pairs</td><td class=\"l\">pct_stereotype</td>.*?</tr>", html, re.S
    )
    assert line, "pct_stereotype row missing"
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", line.group(0))
    assert cells == [
        "gee_crows_pairs",
        "pct_stereotype",
        "→ 0.5",
        "2",
        "0.5",
        "1",
        "+0.5",
        "[+0, +1]",
        "worse, within CI",
    ]


def test_two_runs_side_by_side_with_a_base_warning(tmp_path):
    a = default_run(tmp_path, "gee-a")
    base = {
        "gee_crows_pairs": crows_samples([0.0, 1.0], [1.0, 2.0]),
        "gee_winogender": winogender_samples([1, -1, 0]),
    }
    new = {
        "gee_crows_pairs": crows_samples([0.0, 1.0], [0.5, 2.0]),
        "gee_winogender": winogender_samples([1, -1, 0]),
    }
    b = make_run(tmp_path, "gee-b", base, new, cache_key="other", limit=40)
    html = _html([a, b])
    # key-metrics table and all-metrics table, one column group per run in each
    assert html.count("<th>gee-a</th>") == 2 and html.count("<th>gee-b</th>") == 2
    assert "different base results" in html
    assert "gee-b: a subset run (limit 40" in html


def test_cli_report_writes_file_and_bad_folder_is_one_line_error(tmp_path, capsys):
    run = default_run(tmp_path)
    out = tmp_path / "out" / "r.html"
    assert cli.main(["report", str(run), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert not list(out.parent.glob(".r.html.*"))  # no temp file left behind
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "run.json: missing" in err[0]
    (run / "results" / "comparison.json").write_text("{not json")
    assert cli.main(["report", str(run)]) == 2
    assert "comparison.json: line 1: not valid JSON" in capsys.readouterr().err


def test_nice_ticks_and_fit_line():
    assert charts.nice_ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert charts.nice_ticks(47.2, 61.8) == [45.0, 50.0, 55.0, 60.0, 65.0]
    assert charts.fit_line([0, 1, 2], [1, 3, 5]) == (2.0, 1.0)
    assert charts.fit_line([1, 1], [0, 2]) is None


def test_report_opens_in_headless_chromium_without_errors(tmp_path):
    from reports import browser

    html = tmp_path / "report.html"
    render.write_report([default_run(tmp_path)], html)
    try:
        result = browser.check_report(html, tmp_path / "shot.png")
    except browser.BrowserUnavailable as exc:
        pytest.skip(f"headless Chromium not available here: {exc}")
    assert result.console_errors == [] and result.page_errors == []
    assert result.external_requests == []  # self-contained: nothing fetched beyond the file itself
    assert result.svg_count >= 9 and result.section_ids == list(render.SECTIONS)
    assert (tmp_path / "shot.png").stat().st_size > 10_000


def test_example_generations_are_shown_side_by_side_and_escaped(tmp_path):
    run = default_run(tmp_path)
    prompt = f"The {SCRIPT} nurse"
    rows = [
        {"prompt": prompt, "model": "base", "mode": "greedy", "text": " was kind."},
        {"prompt": prompt, "model": str(run / "adapter"), "mode": "greedy", "text": f" said {SCRIPT}"},
        {"prompt": prompt, "model": "base", "mode": "sampled", "text": " smiled."},
    ]
    (run / "results" / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    html = _html([run])
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert SCRIPT not in html
    section = html[html.index('<section id="generations">') : html.index('<section id="provenance">')]
    cells = re.findall(r'<td class="l">([^<]*)</td>', section)
    assert cells == [run.name, f"The {escaped} nurse", " was kind.", f" said {escaped}", " smiled.", ""]


def test_pareto_chart_places_every_run_by_bias_removed_and_capability_lost(tmp_path):
    from debias import run_folder
    from reports import render

    a, b = default_run(tmp_path, "gee-a"), default_run(tmp_path, "gee-b")
    points = render.pareto_points([run_folder.load(a), run_folder.load(b)])
    # StereoSet SS 58 -> 53: |SS - 50| 8 -> 3, 62.5 % removed (CrowS starts at 50 %: no share to remove);
    # LMS 80 -> 79.5: 0.625 % lost. Identical runs do not beat each other: both on the front.
    assert [p["run"] for p in points] == ["gee-a", "gee-b"]
    for p in points:
        assert p["bias_removed"] == pytest.approx(62.5) and p["retention_lost"] == pytest.approx(0.625)
        assert p["front"]
    html = _html([a, b])
    assert "Bias removed vs capability lost" in html and "gee-b (front)" in html


def test_bbq_bias_scores_are_drawn_per_category(tmp_path):
    from harness_tasks.bbq import metrics as bbq_metrics

    run = default_run(tmp_path)
    path = run / "results" / "comparison.json"
    comparison = json.loads(path.read_text())
    rows = []
    for i, category in enumerate(bbq_metrics.CATEGORIES):
        for prefix in ("bbq_s_amb_", "bbq_s_dis_"):
            base, new = 0.1 + 0.01 * i, 0.05
            rows.append(
                dict(
                    metric=f"{prefix}{category}", base=base, new=new, delta=new - base,
                    ci_low=-0.1, ci_high=0.02, n=32, improved=True, worse_beyond_ci=False,
                    better_beyond_ci=False,
                )
            )  # fmt: skip
    comparison["tasks"]["gee_bbq_lite"] = rows
    path.write_text(json.dumps(comparison))
    for which, key in (("base", "base"), ("debiased", "new")):  # the bars' values come from the results
        results_path = run / "results" / f"{which}.json"
        results = json.loads(results_path.read_text())
        results["results"]["gee_bbq_lite"] = {f"{r['metric']},none": r[key] for r in rows}
        results_path.write_text(json.dumps(results))
    html = _html([run])
    section = html.split('<section id="bbq">')[1].split("</section>")[0]
    assert section.count('<svg class="chart"') == 2  # ambiguous and disambiguated bars
    assert "was not in the suite" not in section
    assert "was not in the suite" in _html([default_run(tmp_path / "other")]).split('<section id="bbq">')[1]


def test_a_run_whose_probe_is_not_an_entropy_probe_renders(tmp_path):
    """Equalisation records pair log-ratios, not group entropies: the report must not assume GEE's keys."""
    run = default_run(tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["method"] = "equalize"
    config["training"] = {
        "steps": 200,
        "probe_before": {"mean_delta": 0.08, "mean_abs_delta": 2.271, "heldout_anchor_kl": 0.0},
        "probe_after": {"mean_delta": 0.02, "mean_abs_delta": 0.457, "heldout_anchor_kl": 0.0085},
    }
    (run / "config.json").write_text(json.dumps(config))
    html = _html([run])
    assert "2.271 → 0.457 nats" in html and "0.0085 nats/token" in html
    assert "This method records no entropy probe." in html
