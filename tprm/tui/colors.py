"""What the terminal may be sent: no colour for TERM=dumb, readable greys under NO_COLOR.

Textual renders every colour as 24-bit when the terminal's colour system is unknown (Rich says
"none" for TERM=dumb), and its NO_COLOR filter turns each colour into a grey of the same
lightness, so muted text can end up one shade off its background. `apply_color_policy` fixes
both on a new app: TERM=dumb gets no colour codes at all (bold/reverse/underline stay, so focus
and cursors remain visible); NO_COLOR gets greys whose text keeps a readable contrast.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter, Monochrome, NoColor

MIN_CONTRAST = 0.45  # smallest lightness gap (0..1) between text and its background under NO_COLOR


@lru_cache(1024)
def readable_grey(style: Style, background: Color) -> Style:
    """`style` in greys, its text pushed to black or white when too close to its background."""
    bg = Color.from_rich_color(style.bgcolor).monochrome if style.bgcolor else background.monochrome
    fg = Color.from_rich_color(style.color).monochrome if style.color else None
    if fg is not None and abs(fg.brightness - bg.brightness) < MIN_CONTRAST:
        fg = Color(255, 255, 255) if bg.brightness < 0.5 else Color(0, 0, 0)
    return style + Style.from_color(fg.rich_color if fg else None,
                                    bg.rich_color if style.bgcolor else None)


class ReadableMonochrome(LineFilter):
    """Greys only, with text kept readable on its background (for NO_COLOR)."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        return [Segment(text, readable_grey(style, background) if style else style, None)
                for text, style, _ in segments]


def is_dumb(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("TERM", "").strip().lower() == "dumb"


def apply_color_policy(app: Any) -> None:
    """Replace the app's colour filters per TERM / NO_COLOR (call in the app's __init__)."""
    filters = [f for f in app._filters if not isinstance(f, (Monochrome, NoColor))]
    if is_dumb():
        filters.append(NoColor())
    elif getattr(app, "no_color", False):
        filters.append(ReadableMonochrome())
    app._filters = filters
