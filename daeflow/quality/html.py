"""One self-contained HTML page per run: facts, a table of numbers, charts and pictures.

Images are embedded as PNG data URIs and charts as inline SVG, so the page previews
in MLflow's artifact viewer and can be saved and mailed as one file.
"""

import base64
import html
import io

import numpy as np

STYLE = """
body { font-family: sans-serif; margin: 16px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { color: #a33; } code { background: #f4f4f4; padding: 2px 4px; word-break: break-all; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
img { image-rendering: pixelated; max-width: 100%; }
"""


def png_data_uri(picture: np.ndarray) -> str:
    """A uint8 RGB picture as a data: URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def table(header: list[str] | None, rows: list[list]) -> str:
    """An HTML table (header row optional); floats with 4 significant digits, None as '-'."""

    def cell(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3g}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header or [])
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def page(
    title: str,
    facts: list[tuple[str, str]],
    sections: list[tuple[str, str]],
    notes: list[str] = (),
) -> str:
    """The whole HTML page: a title, facts as a list, notes, then (heading, html) sections."""
    items = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in facts if v
    )
    warnings = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    body = "".join(f"<h2>{html.escape(h)}</h2>\n{content}\n" for h, content in sections)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><ul>{items}</ul>"
        f"{warnings}{body}</body></html>"
    )


def image(picture: np.ndarray, alt: str) -> str:
    """An <img> holding the picture."""
    return f'<img alt="{html.escape(alt)}" src="{png_data_uri(picture)}">'


def paragraph(text: str) -> str:
    """A paragraph of plain text."""
    return f"<p>{html.escape(text)}</p>"


def command(text: str) -> str:
    """A command line, as code."""
    return f"<code>{html.escape(text)}</code>"
