"""The HTML report: sections of text, tables and figures, written atomically into the workspace.

Each capability contributes :class:`Section` objects; :func:`write_report` puts
them into one page with its figures.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Section", "write_report"]


@dataclass
class Section:
    """One part of the report. ``figures`` are PNG files already written into the report's folder."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)  # caption, header, rows
    figures: list[tuple[str, str]] = field(default_factory=list)  # file name, caption


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _render(title: str, sections: Sequence[Section], created: str) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:13px;text-align:left}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
        "figcaption{font-size:12px;color:#555;margin-bottom:1.5em}h2{border-bottom:1px solid #ddd}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1><p><small>written {html.escape(created)}</small></p>",
        "<ul>"
        + "".join(f"<li><a href='#s{i}'>{html.escape(s.title)}</a></li>" for i, s in enumerate(sections))
        + "</ul>",
    ]
    for i, s in enumerate(sections):
        parts.append(f"<h2 id='s{i}'>{html.escape(s.title)}</h2>")
        parts += [f"<p>{p}</p>" for p in s.paragraphs]  # paragraphs are trusted HTML written by homeloop
        for caption, header, rows in s.tables:
            parts.append(f"<table><caption>{html.escape(caption)}</caption><tr>")
            parts.append("".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows]
            parts.append("</table>")
        for name, caption in s.figures:
            parts.append(
                f"<figure><img src='{html.escape(name)}' alt='{html.escape(caption)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def new_report_dir(reports_root: Path) -> Path:
    """A hidden staging folder for a report; :func:`write_report` publishes it atomically."""
    staging = reports_root / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    return staging


def write_report(staging: Path, sections: Sequence[Section], *, name: str, title: str) -> Path:
    """Write ``index.html`` into ``staging`` and rename it to ``<reports>/<name>``; returns the index path.

    A previous report of the same name is replaced only once the new one is complete.
    """
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    (staging / "index.html").write_text(_render(title, sections, created), encoding="utf-8")
    final = staging.parent / name
    if final.exists():
        old = staging.parent / f".old-{name}-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    return final / "index.html"
