"""anisora.evaluate results, report and compare: two small fake run directories with synthetic videos."""

from __future__ import annotations

import csv
import json
import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anisora.errors import InputError
from anisora.evaluate.compare import compare_runs, format_table
from anisora.evaluate.report import write_report
from anisora.evaluate.results import (
    load_run,
    read_records,
    summarize,
    write_record,
    write_results,
)
from anisora.media import write_video

EVIL = "<script>alert(1)</script>"
NAN = float("nan")
FRAMES, WIDTH, HEIGHT = 9, 64, 48


def record(case, task, label, scores, details=None, prompt="a girl walks", dim="2D"):
    return {
        "case": case,
        "task": task,
        "label": label,
        "dim": dim,
        "prompt": prompt,
        "video": f"videos/{case}.mp4",
        "frames": FRAMES,
        "fps": 8.0,
        "width": WIDTH,
        "height": HEIGHT,
        "scores": scores,
        "details": details or {},
        "seconds_generate": 1.5,
        "seconds_score": 0.25,
    }


RECORDS_A = [
    record(
        "i2v-walk-01", "i2v", "walking", {"motion_smoothness": 0.9, "motion_score": 4.0, "i2v_subject": 0.8}
    ),
    record(
        "i2v-walk-02", "i2v", "walking", {"motion_smoothness": 0.7, "motion_score": NAN, "i2v_subject": 0.6}
    ),
    # no i2v_subject: a metric missing from a case
    record("i2v-run-01", "i2v", "running", {"motion_smoothness": 0.5, "motion_score": 8.0}, prompt=EVIL),
    record(
        "region-wave-01",
        "region",
        "waving",
        {"motion_mask_precision": 0.8, "dynamic_degree": 1.0},
        details={"motion_mask_precision": {"recall": 0.6, "iou": 0.4, "moving_share": 0.1}},
    ),
    record("interp-jump-01", "interpolation", "jumping", {"psnr": 30.0, "ssim": 0.9, "guide_fidelity": 25.0}),
    record("video-x", None, None, {"motion_smoothness": 0.6}, prompt=None, dim=None),
]
MISSING_VIDEO = "interp-jump-01"


def records_b():
    out = []
    for r in RECORDS_A:
        if r["case"] == "video-x":
            continue  # only in run A
        r = json.loads(json.dumps(r))
        if "motion_smoothness" in r["scores"]:
            r["scores"]["motion_smoothness"] += 0.05
        out.append(r)
    out.append(record("i2v-extra-01", "i2v", "walking", {"motion_smoothness": 0.1}))  # only in run B
    return out


def moving_square(seed: int) -> np.ndarray:
    frames = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    frames[..., 2] = np.arange(WIDTH) * 255 // WIDTH
    frames[..., 1] = 40 + 20 * seed
    for t in range(FRAMES):
        frames[t, 12:28, 4 + 5 * t : 20 + 5 * t] = (250, 220, 60)
    return frames


def make_run(root: Path, dir_name: str, records: list[dict], videos: bool) -> Path:
    run = root / dir_name
    metrics = sorted({m for r in records for m in r["scores"]})
    info = {
        "name": "demo-model",
        "kind": "benchmark",
        "model": "/models/demo",
        "bench": "/benches/bench.yaml",
        "settings": {"steps": 4, "seed": 0},
        "metrics": [{"name": m, "version": "1", "weights": "none (classical)"} for m in metrics],
        "anisora_version": "0.1.0",
        "created": "2026-11-24T10:00:00Z",
    }
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps(info))
    for i, r in enumerate(records):
        if videos and r["case"] != MISSING_VIDEO:
            write_video(run / r["video"], moving_square(i), fps=8)
        write_record(run, r)
    write_results(run, read_records(run, order=[r["case"] for r in records]))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    return make_run(root, "run-a", RECORDS_A, videos=True), make_run(root, "run-b", records_b(), videos=False)


# ---------------------------------------------------------------------------------------------- results


def test_summarize_means_leave_out_nan_and_missing():
    s = summarize(RECORDS_A)
    assert s["cases"] == 6
    assert s["overall"]["motion_smoothness"] == {
        "mean": pytest.approx(0.675),
        "std": pytest.approx(0.1479, abs=1e-4),
        "n": 4,
    }
    assert s["overall"]["motion_score"] == {"mean": pytest.approx(6.0), "std": pytest.approx(2.0), "n": 2}
    assert s["overall"]["i2v_subject"]["n"] == 2 and s["overall"]["i2v_subject"]["mean"] == pytest.approx(0.7)
    assert s["overall"]["motion_mask_recall"]["mean"] == pytest.approx(0.6)
    assert s["overall"]["motion_mask_iou"]["mean"] == pytest.approx(0.4)
    assert set(s["by_task"]) == {"i2v", "interpolation", "region"}  # the case without a task: overall only
    assert s["by_task"]["i2v"]["motion_smoothness"]["mean"] == pytest.approx(0.7)
    assert set(s["by_label"]) == {"walking", "running", "waving", "jumping"}
    assert s["by_label"]["walking"]["motion_smoothness"] == {
        "mean": pytest.approx(0.8),
        "std": pytest.approx(0.1),
        "n": 2,
    }
    assert s["by_task_label"]["i2v/walking"]["motion_score"] == {"mean": 4.0, "std": 0.0, "n": 1}
    assert "i2v/running" in s["by_task_label"] and "psnr" not in s["by_task"]["i2v"]


def test_summarize_metric_with_only_nan_has_no_mean():
    s = summarize([record("a", "t2v", "x", {"psnr": NAN}), record("b", "t2v", "x", {"psnr": None})])
    assert s["overall"]["psnr"] == {"mean": None, "std": None, "n": 0}


def test_records_round_trip_and_nan_is_null(runs, tmp_path):
    run_a, _ = runs
    text = (run_a / "scores" / "i2v-walk-02.json").read_text()
    assert "NaN" not in text and json.loads(text)["scores"]["motion_score"] is None
    info, records, summary = load_run(run_a)
    assert info["name"] == "demo-model"
    assert [r["case"] for r in records] == [r["case"] for r in RECORDS_A]  # results.jsonl keeps bench order
    assert records == read_records(run_a, order=[r["case"] for r in RECORDS_A])
    assert records[0] == RECORDS_A[0]
    assert summary == json.loads((run_a / "summary.json").read_text())
    # without an order: sorted by case id
    assert [r["case"] for r in read_records(run_a)] == sorted(r["case"] for r in RECORDS_A)


def test_results_csv_columns_and_values(runs):
    run_a, _ = runs
    with open(run_a / "results.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
        header = list(rows[0])
    metrics = sorted({m for r in RECORDS_A for m in r["scores"]})
    assert header == [
        "case",
        "task",
        "label",
        "dim",
        "prompt",
        "motion",
        *metrics,
        "seconds_generate",
        "seconds_score",
    ]
    by_case = {r["case"]: r for r in rows}
    assert float(by_case["i2v-walk-01"]["motion_smoothness"]) == 0.9
    assert by_case["i2v-walk-02"]["motion_score"] == ""  # NaN
    assert by_case["i2v-run-01"]["i2v_subject"] == ""  # not applicable
    assert by_case["i2v-run-01"]["prompt"] == EVIL
    assert by_case["video-x"]["task"] == "" and by_case["video-x"]["seconds_score"] == "0.25"


def test_corrupt_score_record_raises_input_error(tmp_path):
    write_record(tmp_path, record("good-01", "t2v", "x", {"psnr": 20.0}))
    (tmp_path / "scores" / "bad-01.json").write_text('{"case": "bad-01", "scor')
    with pytest.raises(InputError, match=r"bad-01\.json"):
        read_records(tmp_path)


def test_bad_case_id_and_not_a_run(tmp_path):
    with pytest.raises(InputError, match="case id"):
        write_record(tmp_path, record("../escape", "t2v", "x", {}))
    with pytest.raises(InputError, match=r"is not an evaluate run directory \(no run.json\)"):
        load_run(tmp_path)


# ---------------------------------------------------------------------------------------------- report


def _card(page: str, case: str) -> str:
    start = page.index(f'id="case-{case}"')
    end = page.find('<div class="case"', start)
    return page[start : end if end > 0 else len(page)]


def test_report_sections_cases_and_escaping(runs):
    run_a, _ = runs
    page = write_report(run_a).read_text(encoding="utf-8")
    for r in RECORDS_A:
        assert f'id="case-{r["case"]}"' in page
    for anchor, title in [
        ("task-i2v", "Image to video"),
        ("task-interpolation", "Keyframe interpolation"),
        ("task-region", "Motion-region control"),
        ("task-videos", "Videos"),
    ]:
        assert f'<section id="{anchor}"' in page and title in page
    assert page.index("task-i2v") < page.index("task-interpolation") < page.index("task-region")
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "0.675 ± 0.148" in page  # overall motion_smoothness
    assert 'class="bars"' in page  # i2v has two labels: one chart per metric


def test_report_strips_written_and_reused(runs):
    run_a, _ = runs
    write_report(run_a)
    strip = run_a / "strips" / "i2v-walk-01.jpg"
    with Image.open(strip) as image:
        assert image.size == (8 * WIDTH + 9 * 2, HEIGHT + 2 * 2)  # 8 tiles of 64 px, 2 px gaps
    assert 'src="strips/i2v-walk-01.jpg"' in run_a.joinpath("report.html").read_text()
    before = {p.name: p.stat().st_mtime_ns for p in (run_a / "strips").iterdir()}
    assert len(before) == len(RECORDS_A) - 1  # not for the missing video
    write_report(run_a)
    assert {p.name: p.stat().st_mtime_ns for p in (run_a / "strips").iterdir()} == before
    video = run_a / "videos" / "i2v-walk-01.mp4"  # a newer video gets a new strip
    os.utime(video, (strip.stat().st_mtime + 10, strip.stat().st_mtime + 10))
    write_report(run_a)
    assert strip.stat().st_mtime_ns != before["i2v-walk-01.jpg"]


def test_report_card_for_unreadable_video(tmp_path):
    run = make_run(tmp_path, "run-c", RECORDS_A[:1] + RECORDS_A[-2:], videos=True)
    (run / "videos" / "video-x.mp4").write_bytes(b"not a video at all")
    page = write_report(run).read_text(encoding="utf-8")
    for case in (MISSING_VIDEO, "video-x"):
        card = _card(page, case)
        assert "cannot be read" in card and "<img" not in card
    assert "<img" in _card(page, "i2v-walk-01")


# ---------------------------------------------------------------------------------------------- compare


def test_compare_runs(runs, tmp_path):
    run_a, run_b = runs
    out = tmp_path / "cmp"
    c = compare_runs([run_a, run_b], out=out)
    a, b = "demo-model (run-a)", "demo-model (run-b)"  # same name in run.json: the folder tells them apart
    assert [r["name"] for r in c["runs"]] == [a, b]
    assert c["cases_in_common"] == 5 and c["cases_left_out"] == 2
    assert [r["not_in_common"] for r in c["runs"]] == [1, 1]
    row = c["tables"]["overall"]["metrics"]["motion_smoothness"]
    assert row["means"][a] == pytest.approx(0.7) and row["means"][b] == pytest.approx(0.75)
    assert row["best"] == [b]
    assert c["tables"]["overall"]["metrics"]["motion_score"]["best"] == []  # not ranked
    assert c["tables"]["overall"]["metrics"]["psnr"]["best"] == [a, b]  # a tie
    assert list(c["tables"]) == ["overall", "i2v", "interpolation", "region"]
    assert c["tables"]["i2v"]["cases"] == 3

    text = format_table(c)
    line = next(x for x in text.splitlines() if x.startswith("motion_smoothness"))
    assert "0.700 " in line and "0.750*" in line
    assert "*" not in next(x for x in text.splitlines() if x.startswith("motion_score"))
    assert "2 cases left out" in text

    saved = json.loads((out / "compare.json").read_text(), parse_constant=lambda x: pytest.fail(x))
    assert saved["tables"]["overall"]["metrics"]["motion_smoothness"]["best"] == [b]
    page = (out / "compare.html").read_text()
    assert '<b class="best">0.750</b>' in page and page.count('class="bars"') >= 5


def test_compare_needs_two_distinct_runs(runs):
    run_a, _ = runs
    with pytest.raises(InputError, match="at least two"):
        compare_runs([run_a])
    with pytest.raises(InputError, match="given twice"):
        compare_runs([run_a, run_a])


def test_summarize_nothing():
    assert summarize([]) == {"cases": 0, "overall": {}, "by_task": {}, "by_label": {}, "by_task_label": {}}


class _Page(HTMLParser):
    """The frames table of compare.html: per case row, its run cells and their images; all <script> tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: dict[str, list[dict]] = {}
        self.case: str | None = None
        self.cell: dict | None = None
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.scripts += tag == "script"
        if tag == "tr" and "data-case" in a:
            self.case = a["data-case"]
            self.rows[self.case] = []
        elif tag == "td" and "data-run" in a and self.case:
            self.cell = {"run": a["data-run"], "images": [], "problem": False}
            self.rows[self.case].append(self.cell)
        elif tag == "img" and self.cell is not None:
            self.cell["images"].append(a["src"])
        elif tag == "div" and a.get("class") == "noimg" and self.cell is not None:
            self.cell["problem"] = True

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None
        elif tag == "tr":
            self.case = None

    def handle_data(self, data):
        self.text.append(data)


def test_compare_page_shows_each_case_from_each_run(runs, tmp_path):
    run_a, run_b = runs
    out = tmp_path / "cmp"
    c = compare_runs([run_a, run_b], out=out)
    names = [r["name"] for r in c["runs"]]
    page = (out / "compare.html").read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(page)
    common = [r["case"] for r in RECORDS_A if r["case"] != "video-x"]
    assert sorted(parsed.rows) == sorted(common) and len(parsed.rows) == c["cases_in_common"]
    for case, cells in parsed.rows.items():
        assert [cell["run"] for cell in cells] == names, case  # one cell per run, in run order
        a, b = cells
        if case == MISSING_VIDEO:
            assert a["problem"] and not a["images"]
        else:  # run A has videos: its strips, linked relative to the page; run B has none
            assert a["images"] and all((out / src).resolve().is_file() for src in a["images"])
            assert (out / a["images"][0]).resolve() == (run_a / "strips" / f"{case}.jpg").resolve()
        assert b["problem"] and not b["images"]
    # the prompt with a script tag is shown as text, never run
    assert parsed.scripts == 0 and EVIL not in page and any(EVIL in t for t in parsed.text)
