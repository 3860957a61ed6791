"""anisora.reporting: the shared templates (package data, autoescape) and the chart geometry."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from anisora.evaluate.report import metric_chart
from anisora.reporting import breakable, render, render_chart
from anisora.reporting.charts import bar_chart, nice_step, tick_values

EVIL = "<script>alert(1)</script>"
PAGES = ("base.html", "curate_report.html", "evaluate_report.html", "compare.html")


def test_templates_and_stylesheet_ship_with_the_package():
    assets = resources.files("anisora.reporting") / "assets"
    for name in (*PAGES, "charts.html", "strip.html", "report.css"):
        assert (assets / name).is_file(), name


def test_the_shell_escapes_text_and_inlines_the_one_stylesheet():
    page = render("base.html", title=EVIL, subtitle=None, nav=[('a" onclick="x', EVIL)])
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="#a&#34; onclick=&#34;x"' in page  # an attribute cannot be closed from the data
    assert "None" not in page  # missing values show as nothing
    css = (resources.files("anisora.reporting") / "assets" / "report.css").read_text(encoding="utf-8")
    assert page.count("<style>") == 1 and css.strip() in page
    assert "<link" not in page and "http" not in page.replace("http://www.w3.org", "")


def test_breakable_escapes_and_adds_break_opportunities():
    assert str(breakable("psnr_<b>")) == "psnr_<wbr>&lt;b&gt;"


def bar_widths(svg: str) -> dict[str, float]:
    rows = re.findall(r'data-row="([^"]*)">.*?<rect [^>]*width="([\d.]+)"', svg, re.S)
    return {label: float(width) for label, width in rows}


def test_a_psnr_at_the_cap_does_not_set_the_axis():
    rows = [("demo-model", 17.38), ("still", 22.17), ("crossfade", 23.17), ("truth", 100.0)]
    chart = metric_chart("psnr", rows, best=["truth"])
    assert chart.ticks[-1].label == "30"  # the axis ends above the largest value below the cap
    assert [b.capped for b in chart.bars] == [False, False, False, True]
    assert "identical" in chart.note
    svg = render_chart(chart)
    widths = bar_widths(svg)
    plot = widths["truth"]  # the capped bar spans the plot, broken
    assert widths["crossfade"] == pytest.approx(plot * 23.17 / 30, abs=0.2)
    assert widths["demo-model"] > 0.5 * plot  # not flattened against the 100 dB bar (17 % of it)
    assert 'class="break"' in svg and svg.count('class="capped"') == 1
    assert ">100.00<" in svg  # the capped value is still shown as text


def test_bars_without_a_cap_or_only_at_the_cap():
    plain = bar_chart("x", [("a", 40.0, "40"), ("b", 100.0, "100")], bounded=False)
    assert plain.ticks[-1].label == "100" and not any(b.capped for b in plain.bars)
    same = metric_chart("psnr", [("a", 100.0), ("b", 100.0)])
    assert same.ticks[-1].label == "100" and not any(b.capped for b in same.bars) and not same.note
    bounded = metric_chart("ssim", [("a", 0.5), ("b", None)])
    assert [t.label for t in bounded.ticks] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    assert bounded.bars[1].length is None and bounded.bars[1].shown == "n/a"


@pytest.mark.parametrize(
    ("lo", "hi", "count", "ticks", "decimals"),
    [
        (0, 10, 5, [0, 2, 4, 6, 8, 10], 0),
        (0, 1, 4, [0, 0.25, 0.5, 0.75, 1.0], 2),
        (0, 100, 4, [0, 25, 50, 75, 100], 0),
        (0.3, 0.9, 3, [0.4, 0.6, 0.8], 1),
    ],
)
def test_tick_values(lo, hi, count, ticks, decimals):
    got, got_decimals = tick_values(lo, hi, count)
    assert got == pytest.approx(ticks) and got_decimals == decimals
    assert nice_step(3.0) == 5 and nice_step(0.2) == pytest.approx(0.2)
