"""What differs between two Textual SVG snapshots, as text: the screen's lines, then its styles.

A CI log shows only "1 snapshot failed"; the HTML report stays on the CI machine. On a mismatch the
`snap_compare` fixture (conftest.py) prints this, so the log itself names the change.
"""

from __future__ import annotations

import difflib
import html
import re

_TEXT = re.compile(r'<text class="([^"]*)" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>')
_STYLE = re.compile(r"\.terminal(?:-\d+)?-(r\d+) \{([^}]*)\}")
_RECT = re.compile(r'<rect fill="(#[0-9a-f]+)" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"')


def screen_lines(svg: str) -> list[str]:
    """The characters on screen, one string per terminal row (cells are 12.2 px wide)."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for m in _TEXT.finditer(svg):
        text = html.unescape(re.sub("<[^>]+>", "", m.group(4)))
        rows.setdefault(float(m.group(3)), []).append((float(m.group(2)), text))
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            line = line.ljust(round(x / 12.2)) + text
        lines.append(line.replace("\xa0", " ").rstrip())
    return lines


def style_lines(svg: str) -> list[str]:
    """Each text run's style (colour, weight) and each background block, position by position."""
    styles = {name: body.strip() for name, body in _STYLE.findall(svg)}
    out = [f"text {round(float(x) / 12.2)},{y} {styles.get(c.split('-')[-1], c)}"
           for c, x, y, _ in _TEXT.findall(svg)]
    out += [f"rect {round(float(x) / 12.2)},{y} w{round(float(w) / 12.2)} {fill}"
            for fill, x, y, w in _RECT.findall(svg)]
    return out


def describe(expected: str, actual: str, limit: int = 40) -> str:
    """A unified diff of the screen text, or (when the text agrees) of the styles."""
    diff = list(difflib.unified_diff(screen_lines(expected), screen_lines(actual), "snapshot", "now",
                                     lineterm="", n=1))
    what = "screen text"
    if not diff:
        diff = list(difflib.unified_diff(style_lines(expected), style_lines(actual), "snapshot", "now",
                                         lineterm="", n=0))
        what = "styles (the text is the same)"
    return "\n".join([f"snapshot mismatch in the {what}:", *diff[:limit]])
