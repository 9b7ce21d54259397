"""The report's document model: one list of blocks, rendered to Markdown and to one HTML file.

Both renderings come from the same blocks, so ``report.md`` and ``report.html`` never disagree.
The HTML is self-contained: inline CSS, images embedded as base64 PNG, so it can be mailed or
archived alone. Text may hold Markdown's `code`, **bold** and *italic*; the HTML renders them.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;"
    "margin:2em auto;padding:0 1em;line-height:1.5;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.92em}"
    "th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}"
    "th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}"
    "code{background:#f3f3f3;padding:0 0.2em;border-radius:3px}"
    "pre{background:#f3f3f3;padding:0.8em;overflow-x:auto}"
    "figure{margin:1.2em 0}img{max-width:100%;border:1px solid #eee}"
    "figcaption{font-size:0.9em;color:#555}h1{border-bottom:2px solid #ddd}"
    "h2{border-bottom:1px solid #eee;margin-top:1.8em}"
)


class Document:
    """Blocks (headings, paragraphs, lists, code, tables, images) rendered to Markdown and HTML.

    ``base`` is the directory image paths are relative to: the HTML reads the images from it.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def how_to_read(self, text: str) -> None:
        """A paragraph that tells the reader how to read what is above it."""
        self.paragraph(f"**How to read this.** {text}")

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [[str(c) for c in r] for r in rows])))

    def image(self, rel: str, caption: str) -> None:
        """A PNG file at ``base / rel``, with ``caption`` as its alt text and caption."""
        self.blocks.append(("image", (rel, caption)))

    def markdown(self) -> str:
        """The document as Markdown; images are links to their files."""
        return "\n\n".join(_markdown_block(kind, value) for kind, value in self.blocks) + "\n"

    def html(self, title: str) -> str:
        """The document as one self-contained HTML page."""
        body = [self._html_block(kind, value) for kind, value in self.blocks]
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + "\n</body>\n</html>\n"
        )

    def _html_block(self, kind: str, value: Any) -> str:
        if kind != "image":
            return _html_block(kind, value)
        rel, caption = value
        data = base64.b64encode((self.base / rel).read_bytes()).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{_html_inline(caption)}</figcaption></figure>"
        )


def _markdown_block(kind: str, value: Any) -> str:
    if kind == "heading":
        level, text = value
        return "#" * level + " " + text
    if kind == "paragraph":
        return value
    if kind == "bullets":
        return "\n".join(f"- {item}" for item in value)
    if kind == "code":
        return "```\n" + value + "\n```"
    if kind == "table":
        header, rows = value
        lines = ["| " + " | ".join(_markdown_cell(c) for c in header) + " |"]
        lines.append("|" + "|".join(" --- " for _ in header) + "|")
        lines += ["| " + " | ".join(_markdown_cell(c) for c in r) + " |" for r in rows]
        return "\n".join(lines)
    if kind == "image":
        rel, caption = value
        alt = caption.replace("[", "\\[").replace("]", "\\]")
        return f"![{alt}]({rel})"
    raise ValueError(f"unknown block kind {kind!r}")


def _html_block(kind: str, value: Any) -> str:
    """Every block but images, which need the document's base directory."""
    if kind == "heading":
        level, text = value
        anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        return f'<h{level} id="{anchor}">{_html_inline(text)}</h{level}>'
    if kind == "paragraph":
        return f"<p>{_html_inline(value)}</p>"
    if kind == "bullets":
        return "<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in value) + "</ul>"
    if kind == "code":
        return f"<pre><code>{html.escape(value)}</code></pre>"
    if kind == "table":
        header, rows = value
        head = "".join(f"<th>{_html_inline(c)}</th>" for c in header)
        trs = "".join(
            "<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in r) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>"
    raise ValueError(f"unknown block kind {kind!r}")


def _markdown_cell(text: str) -> str:
    """A table cell's text: a ``|`` or a line break would end the cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _html_inline(text: str) -> str:
    """Escape, then render `code`, **bold** and *italic*."""
    out = []
    for part in re.split(r"(`[^`]*`)", str(text)):
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        escaped = html.escape(part)
        escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
        escaped = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", escaped)
        out.append(escaped)
    return "".join(out)
