"""The HTML reports' one page shell, stylesheet and chart macros: Jinja2 templates with autoescape.

Pages (`curate_report.html`, `evaluate_report.html`, `compare.html` under assets/) extend `base.html`, which
inlines `report.css`, so every report is a single file (its images are linked). Every value a template shows
is escaped unless it is `Markup`; the pages need no escaping of their own.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from .. import __version__


def breakable(text: Any) -> Markup:
    """`text` escaped, with line-break opportunities after its underscores (long names in narrow heads)."""
    return Markup("_<wbr>").join(escape(part) for part in str(text).split("_"))


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("anisora.reporting", "assets"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda value: "" if value is None else value,  # a missing value shows as nothing
    )
    env.filters.update(breakable=breakable, thousands="{:,}".format)
    css, _, _ = env.loader.get_source(env, "report.css")
    env.globals.update(css=Markup(css), version=__version__)
    return env


def render(template: str, **context: Any) -> str:
    """The page `template` (a file under assets/) filled with `context`, as a string ending in a newline."""
    return environment().get_template(template).render(**context).rstrip("\n") + "\n"


def render_chart(chart: Any) -> str:
    """One chart of `charts` as inline SVG, outside any page (charts.html's `chart` macro)."""
    return str(environment().get_template("charts.html").module.chart(chart))
