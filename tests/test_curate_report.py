"""anisora.curate.report: report.html from synthetic manifest rows (no videos, no thumbnails on disk)."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from anisora.curate.config import FilterConfig
from anisora.curate.filters import RULES, SCORES, decide, mark_duplicates
from anisora.curate.report import (
    FUNNEL_STAGES,
    MAX_SCATTER,
    MAX_THUMBS,
    OTHER_STAGE,
    card_scores,
    fmt_number,
    funnel,
    histogram_columns,
    sample_rows,
    score_histogram,
    source_table,
    write_report,
)
from anisora.reporting import render_chart

EVIL = "<script>alert(1)</script>"
FILTERS = {
    "min_seconds": 2.0,
    "max_seconds": 20.0,
    "drop_static": True,
    "min_motion": 1.0,
    "max_motion": None,
    "max_text_area": 5.0,
    "drop_subtitles": False,
    "min_quality": 4.0,
    "min_aesthetic": None,
    "max_border_share": None,
}
ALL_REASONS = [r for _, rules in FUNNEL_STAGES for r in rules]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        source = f"/videos/ep{i % 7:02d}.mp4" if i % 50 else f"/videos/{EVIL}.mp4"
        start = int(rng.integers(0, 10_000))
        length = int(rng.integers(10, 600))
        reasons = [r for r in ALL_REASONS if rng.random() < 0.12]
        keep = not reasons
        clip_id = f"ep{i % 7:02d}-{start:06d}-{start + length:06d}"
        row = {
            "clip_id": clip_id,
            "source": source,
            "start_frame": start,
            "end_frame": start + length,
            "start_time": start / 24,
            "end_time": (start + length) / 24,
            "keep": keep,
            "reasons": reasons,
            "thumb": f"thumbs/{clip_id}.jpg" if i % 9 else None,
            "caption": EVIL if i % 40 == 3 else f"A cartoon cat walks, clip {i}.",
            "prompt": "prompt",
            "clip_path": f"clips/{clip_id}.mp4" if keep else None,
            "duration_seconds": length / 24,
            "motion_score": float(rng.gamma(2.0, 1.5)) if i % 11 else None,
            "motion_held_share": float(rng.uniform(0, 0.8)),
            "motion_static": bool(rng.random() < 0.1),
            "text_area": float(rng.exponential(3.0)) if i % 13 else float("nan"),
            "text_subtitle": bool(rng.random() < 0.2),
            "quality_score": float(rng.uniform(0, 10)),
            "borders_share": 0.0,  # all equal
        }
        rows.append(row)
    return rows


class _Checker(HTMLParser):
    """Counts open/close tags of a few container elements and collects data-* attributes."""

    TRACKED = ("html", "head", "body", "section", "table", "tr", "svg", "div", "details", "figure", "g")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.opened: Counter = Counter()
        self.closed: Counter = Counter()
        self.attrs: list[dict] = []
        self.tags: Counter = Counter()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.attrs.append({"tag": tag, **dict(attrs)})
        if tag in self.TRACKED:
            self.opened[tag] += 1

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] += 1
        self.attrs.append({"tag": tag, **dict(attrs)})

    def handle_endtag(self, tag):
        if tag in self.TRACKED:
            self.closed[tag] += 1

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> tuple[str, _Checker]:
    text = path.read_text(encoding="utf-8")
    checker = _Checker()
    checker.feed(text)
    checker.close()
    for tag in _Checker.TRACKED:
        assert checker.opened[tag] == checker.closed[tag], tag
    return text, checker


def hand_count(rows):
    """The funnel by a different route: walk the reasons in funnel order."""
    order = [r for _, rules in FUNNEL_STAGES for r in rules]
    stage_of = {r: s for s, rules in FUNNEL_STAGES for r in rules}
    removed, fails = Counter(), Counter()
    for row in rows:
        for stage in {stage_of[r] for r in row["reasons"]}:
            fails[stage] += 1
        if not row["keep"]:
            first = min(row["reasons"], key=order.index)
            removed[stage_of[first]] += 1
    return removed, fails


def test_funnel_matches_hand_count_and_adds_up():
    rows = make_rows(200)
    result = funnel(rows)
    assert [s for s, _, _ in result] == [s for s, _ in FUNNEL_STAGES]
    removed, fails = hand_count(rows)
    for stage, rem, fail in result:
        assert rem == removed[stage]
        assert fail == fails[stage]
        assert rem <= fail
    kept = sum(r["keep"] for r in rows)
    assert len(rows) - sum(rem for _, rem, _ in result) == kept


def test_funnel_small_cases():
    rows = [
        {"keep": True, "reasons": []},
        {"keep": False, "reasons": ["low_quality", "too_short"]},  # charged to duration
        {"keep": False, "reasons": ["subtitles"]},
        {"keep": False, "reasons": ["borders", "low_motion"]},  # charged to motion
        {"keep": False, "reasons": []},  # no known reason: "other"
        {"keep": False, "reasons": ["something_new"]},
    ]
    got = {s: (rem, fail) for s, rem, fail in funnel(rows)}
    assert got["duration"] == (1, 1)
    assert got["motion"] == (1, 1)
    assert got["text"] == (1, 1)
    assert got["quality"] == (0, 1)
    assert got["borders"] == (0, 1)
    assert got[OTHER_STAGE] == (2, 2)
    assert sum(rem for rem, _ in got.values()) == 5
    assert OTHER_STAGE not in {s for s, _, _ in funnel(rows[:4])}
    assert all(rem == 0 and fail == 0 for _, rem, fail in funnel([]))


def test_report_contents(tmp_path):
    rows = make_rows(200)
    failures = [
        {
            "source": f"/videos/{EVIL}.mkv",
            "error": "MediaError: moov atom not found\nline 2",
            "stage": "probe",
        },
        {"source": "/videos/b.mp4", "error": EVIL, "stage": "decode"},
    ]
    summary = {
        "videos": 7,
        "videos_failed": 2,
        "candidates": 200,
        "kept": sum(r["keep"] for r in rows),
        "keep_rate": 0.164,
        "seconds": 31.2,
        "reasons": {"static": 40, "low_motion": 12},
    }
    path = write_report(tmp_path, rows, failures, summary, FILTERS)
    assert path == tmp_path / "report.html"
    assert not [p for p in tmp_path.iterdir() if p.name != "report.html"]  # no temp file left
    text, html = parse(path)

    # escaping: the script text is shown, never a live tag
    assert "<script>alert(1)" not in text.lower() and text.count("<script>") == 1  # the table sorter only
    assert 'document.querySelectorAll("table.sortable th[data-sort]")' in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert html.tags["script"] == 1
    assert any(EVIL in t for t in html.text)  # decoded text content contains it literally
    assert any(a.get("title") == EVIL for a in html.attrs)  # caption as tooltip

    # the funnel numbers in the page match funnel() and add up
    removed = {a["data-stage"]: None for a in html.attrs if "data-stage" in a}
    assert list(removed) == [s for s, _ in FUNNEL_STAGES]
    page_removed = [int(a["data-removed"]) for a in html.attrs if "data-removed" in a]
    page_fails = [int(a["data-fails"]) for a in html.attrs if "data-fails" in a]
    assert page_removed == [rem for _, rem, _ in funnel(rows)]
    assert page_fails == [fail for _, _, fail in funnel(rows)]
    kept = sum(r["keep"] for r in rows)
    assert len(rows) - sum(page_removed) == kept
    assert re.search(rf'data-funnel="kept">{kept:,}\b', text)

    # histograms: one per numeric column, thresholds drawn where a rule is on
    columns = [a["data-column"] for a in html.attrs if a["tag"] == "svg" and "data-column" in a]
    assert columns == [
        "duration_seconds",
        "motion_score",
        "text_area",
        "quality_score",
        "borders_share",
        "motion_held_share",
    ]  # no aesthetic_score values: skipped
    thresholds = {a["data-threshold"]: float(a["data-value"]) for a in html.attrs if "data-threshold" in a}
    assert thresholds == {
        "min_seconds": 2.0,
        "max_seconds": 20.0,
        "min_motion": 1.0,
        "max_text_area": 5.0,
        "min_quality": 4.0,
    }
    assert "nan" not in " ".join(str(v) for a in html.attrs for v in a.values()).lower()

    # thumbnails: relative paths, capped per group
    images = [a["src"] for a in html.attrs if a["tag"] == "img"]
    assert images and all(src.startswith("thumbs/") for src in images)
    groups = [a for a in html.attrs if a["tag"] == "details"]
    assert groups[0]["id"] == "thumbs-kept"
    assert len(images) <= MAX_THUMBS * len(groups)
    assert "no thumbnail" in text
    assert 'href="clips/' in text

    # summary and failures
    assert "16.4 %" in text
    assert "moov atom not found" in text
    assert "probe" in text


def test_empty_inputs(tmp_path):
    path = write_report(tmp_path / "new", [], [], {}, {})
    text, html = parse(path)
    assert html.tags["svg"] == 0
    assert "No failures." in text
    assert 'data-funnel="candidates">0<' in text


def test_nothing_kept_and_missing_scores(tmp_path):
    rows = make_rows(30, seed=1)
    for row in rows:
        row["keep"] = False
        row["reasons"] = row["reasons"] or ["low_quality"]
        for key in ("motion_score", "text_area", "quality_score", "borders_share", "motion_held_share"):
            row[key] = None
        row["duration_seconds"] = 3.0  # all equal
    text, html = parse(write_report(tmp_path, rows, [], {"kept": 0}, FILTERS))
    assert [a["data-column"] for a in html.attrs if a["tag"] == "svg"] == ["duration_seconds"]
    assert sum(rem for _, rem, _ in funnel(rows)) == len(rows)
    assert "None." in text  # empty kept grid


def test_many_rows_stays_small(tmp_path):
    rows = make_rows(10_000, seed=2)
    path = write_report(tmp_path, rows, [], {}, FILTERS)
    text, html = parse(path)
    assert html.tags["img"] <= MAX_THUMBS * (1 + len(ALL_REASONS))
    assert html.tags["circle"] == MAX_SCATTER and "spread evenly" in text
    assert len(text) < 1_000_000
    # deterministic
    assert write_report(tmp_path, rows, [], {}, FILTERS).read_text(encoding="utf-8") == text


def test_sample_rows_is_deterministic_and_spread():
    rows = make_rows(500)
    a = sample_rows(rows, 24)
    assert len(a) == 24
    assert a == sample_rows(list(reversed(rows)), 24)
    assert len({r["source"] for r in a}) > 3
    assert sample_rows(rows[:5], 24) == sorted(
        rows[:5], key=lambda r: (r["source"], r["start_frame"], r["clip_id"])
    )


def histogram_svg(column, kept, dropped, thresholds):
    chart = score_histogram(column, kept, dropped, thresholds)
    return render_chart(chart), chart.note


def test_histogram_edge_cases():
    svg, note = histogram_svg("x", np.array([2.0, 2.0]), np.array([2.0]), {"min_x": 2.0})
    assert 'data-threshold="min_x"' in svg
    assert "3 values" in note
    svg, note = histogram_svg("x", np.array([]), np.array([5.0]), {})
    assert "<rect" in svg
    # an outlier does not squash the rest into one bin
    values = np.concatenate([np.linspace(0, 1, 500), [1000.0]])
    svg, note = histogram_svg("x", values, np.array([]), {})
    assert "outliers" in note
    assert len(re.findall("<rect", svg)) > 20


@pytest.mark.parametrize(
    ("value", "key", "expected"),
    [
        (12, "videos", "12"),
        (123456, "", "123,456"),
        (0.164, "keep_rate", "0.164 (16.4 %)"),
        (31.2, "seconds", "31.2"),
        (None, "", "–"),
        (float("nan"), "", "–"),
        (True, "", "yes"),
        (4.0, "min_quality", "4"),
    ],
)
def test_fmt_number(value, key, expected):
    assert fmt_number(value, key) == expected


def test_one_rule_table_drives_the_decision_the_funnel_the_histograms_and_the_cards():
    assert sorted(r.setting for r in RULES) == sorted(FilterConfig.model_fields)  # one rule each
    assert [r for _, rules in FUNNEL_STAGES for r in rules] == [r.reason for r in RULES]
    assert all(c in SCORES for r in RULES if r.test != "flag" for c in r.columns)
    # text: the scene text (subtitles left out) when scored, else all text; the histogram and card follow
    row = {"duration_seconds": 5.0, "motion_score": 3.0, "quality_score": 6.0, "text_area": 30.0}
    subtitled = {**row, "text_scene_area": 1.0, "text_subtitle": True}
    assert decide(row, FilterConfig()) == ["text"] and decide(subtitled, FilterConfig()) == []
    assert decide(subtitled, FilterConfig(drop_subtitles=True)) == ["subtitles"]
    assert decide({**row, "motion_score": None, "text_area": None}, FilterConfig(min_motion=99)) == []
    columns = dict(histogram_columns([subtitled]))
    assert columns["text_scene_area"] == ("max_text_area",) and "text_area" not in columns
    assert columns["motion_score"] == ("min_motion", "max_motion") and "motion_held_share" in columns
    assert "text_area" in dict(histogram_columns([row]))
    shown = {
        score.label: (value, failing) for score, value, failing in card_scores({**row, "reasons": ["text"]})
    }
    assert shown["text"] == (30.0, True) and shown["motion"] == (3.0, False) and "" not in shown
    shown = {score.label: value for score, value, _ in card_scores(subtitled)}
    assert shown["text"] == 1.0


def test_near_duplicates_keep_the_best_scored_copy():
    base = {"duration_seconds": 4.0, "motion_score": 3.0, "text_area": 0.0}
    rows = [
        {**base, "clip_id": "a", "quality_score": 5.0, "dedup_hash": "ffff000000000000 00000000ffff0000"},
        {
            **base,
            "clip_id": "b",
            "quality_score": 7.0,
            "dedup_hash": "ffff000000000007 00000000ffff0000",
        },  # 3 bits
        {**base, "clip_id": "c", "quality_score": 9.0, "dedup_hash": "0000ffffffff0000 ffff00000000ffff"},
        {**base, "clip_id": "d", "quality_score": 9.5, "dedup_hash": "ffff000000000000 00000000ffff0000"},
        {**base, "clip_id": "e", "quality_score": 1.0, "dedup_hash": None},
    ]
    rows[3]["text_area"] = 50.0  # the best score, but another rule drops it: the kept copy must survive
    marked = {r["clip_id"]: r["duplicate_of"] for r in mark_duplicates(rows, FilterConfig())}
    assert marked == {"a": "b", "b": None, "c": None, "d": "b", "e": None}
    assert decide({**rows[0], "duplicate_of": "b"}, FilterConfig()) == ["duplicate"]
    off = mark_duplicates(rows, FilterConfig(max_duplicate_distance=None))
    assert all(r["duplicate_of"] is None for r in off)
    strict = {
        r["clip_id"]: r["duplicate_of"] for r in mark_duplicates(rows, FilterConfig(max_duplicate_distance=1))
    }
    assert strict["a"] is None and strict["d"] == "a"  # a and b differ by 1.5 bits a frame; d is a's copy


def test_sources_table_scatter_and_captions(tmp_path):
    rows = make_rows(300, seed=4)
    table = {t["source"]: t for t in source_table(rows)}
    ep3 = [r for r in rows if r["source"] == "/videos/ep03.mp4"]
    assert table["/videos/ep03.mp4"]["clips"] == len(ep3)
    assert table["/videos/ep03.mp4"]["kept"] == sum(r["keep"] for r in ep3)
    motions = [r["motion_score"] for r in ep3 if r["motion_score"] is not None]
    assert table["/videos/ep03.mp4"]["motion"] == pytest.approx(sum(motions) / len(motions))
    page = write_report(tmp_path, rows, [], {}, FILTERS).read_text(encoding="utf-8")
    assert page.count('<table class="sources sortable">') == 1 and page.count("<th data-sort=") == 8
    assert 'data-threshold="min_motion"' in page and 'data-threshold="min_quality"' in page
    assert (
        '<p class="caption">A cartoon cat walks, clip' in page
    )  # captions are on the cards, not in a tooltip
    assert EVIL not in page
