"""The report's one self-contained HTML file: the Markdown rendered by markdown-it-py, each chart's SVG inlined."""

from __future__ import annotations

import html as html_escape
import re
from pathlib import Path


def html_page(md: str, charts: list[Path], out: Path) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(md)
    for c in charts:  # inline every chart: the file makes no external request
        svg = c.read_text()
        svg = svg[svg.index("<svg") :]
        rel = re.escape(html_escape.escape(c.relative_to(out).as_posix()))
        block = f'<div class="chart">{svg}</div>'
        body = re.sub(f'<img src="{rel}"[^>]*>', lambda _m: block, body)  # noqa: B023 (used at once)
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
    return f'<!doctype html><html><head><meta charset="utf-8"><title>Day 0 report</title><style>{style}</style></head><body>{body}</body></html>\n'
