"""Colour scales for heat maps, and how a colour is written for a terminal's colour depth.

Sequential metrics (errors, losses, CKA) use viridis: perceptually uniform, readable by
colour-blind users and in grey scale. mc uses a diverging red-white-blue scale centred on 0,
so a barrier (negative) is red whatever the range. Regimes are categorical.
Depths: "truecolor" (24-bit), "256" (the xterm 6x6x6 cube and grey ramp), "16" (the ANSI
colours), "none" (no escapes at all: NO_COLOR, TERM=dumb, pipes).
"""

from __future__ import annotations

RGB = tuple[int, int, int]
DEPTHS = ("truecolor", "256", "16", "none")

# viridis sampled at 9 evenly spaced points (0 -> 1)
VIRIDIS: tuple[RGB, ...] = ((0x44, 0x01, 0x54), (0x47, 0x2c, 0x7a), (0x3b, 0x51, 0x8b),
                            (0x2c, 0x71, 0x8e), (0x21, 0x90, 0x8d), (0x27, 0xad, 0x81),
                            (0x5c, 0xc8, 0x63), (0xaa, 0xdc, 0x32), (0xfd, 0xe7, 0x25))
# diverging red (negative) - white (0) - blue (positive), 7 points over -1 .. 1
RED_BLUE: tuple[RGB, ...] = ((0xb2, 0x18, 0x2b), (0xef, 0x8a, 0x62), (0xfd, 0xdb, 0xc7),
                             (0xf7, 0xf7, 0xf7), (0xd1, 0xe5, 0xf0), (0x67, 0xa9, 0xcf),
                             (0x21, 0x66, 0xac))
REGIME_RGB: dict[str, RGB] = {"I": (0xd7, 0x30, 0x27), "II-A": (0xfd, 0xae, 0x61),
                              "II-B": (0x1a, 0x98, 0x50), "diverged": (0x3a, 0x3a, 0x3a),
                              "unknown": (0x80, 0x80, 0x80)}
DIVERGING_METRICS = ("mc", "mc_loss")

# the 16 ANSI colours (xterm defaults): SGR background codes 40-47, 100-107
_ANSI16: tuple[tuple[RGB, int], ...] = (
    ((0, 0, 0), 40), ((205, 0, 0), 41), ((0, 205, 0), 42), ((205, 205, 0), 43),
    ((0, 0, 238), 44), ((205, 0, 205), 45), ((0, 205, 205), 46), ((229, 229, 229), 47),
    ((127, 127, 127), 100), ((255, 0, 0), 101), ((0, 255, 0), 102), ((255, 255, 0), 103),
    ((92, 92, 255), 104), ((255, 0, 255), 105), ((0, 255, 255), 106), ((255, 255, 255), 107))
_CUBE = (0, 95, 135, 175, 215, 255)


def interpolate(stops: tuple[RGB, ...], x: float) -> RGB:
    """The colour at ``x`` in [0, 1] along evenly spaced ``stops`` (clamped)."""
    x = min(1.0, max(0.0, x)) * (len(stops) - 1)
    k = min(int(x), len(stops) - 2)
    f = x - k
    a, b = stops[k], stops[k + 1]
    return tuple(round(a[c] + (b[c] - a[c]) * f) for c in range(3))  # type: ignore[return-value]


BARRIER_SPAN = 2.0  # a diverging scale reaches full red no nearer 0 than this many thresholds


def diverging_half_range(lo: float, hi: float, barrier: float | None) -> float:
    """Half the range of a scale centred on 0: the data's largest |value|, but never less than
    BARRIER_SPAN x |barrier| (the recipe's mc threshold), so a value weaker than the threshold is
    drawn pale and only a real barrier is deep red, however small the data's own range."""
    return max(abs(lo), abs(hi), BARRIER_SPAN * abs(barrier or 0.0)) or 1.0


class Scale:
    """Maps a metric value to a colour: viridis over [lo, hi], or red-white-blue centred on 0
    (symmetric, wide enough that |value| < ``barrier`` never looks like a barrier)."""

    def __init__(self, metric: str, lo: float, hi: float, barrier: float | None = None):
        self.diverging = metric in DIVERGING_METRICS
        if self.diverging:
            m = diverging_half_range(lo, hi, barrier)
            self.lo, self.hi = -m, m
        else:
            self.lo, self.hi = lo, hi

    def position(self, value: float) -> float:
        return 0.5 if self.hi <= self.lo else (value - self.lo) / (self.hi - self.lo)

    def rgb(self, value: float) -> RGB:
        return interpolate(RED_BLUE if self.diverging else VIRIDIS, self.position(value))


def luminance(rgb: RGB) -> float:
    r, g, b = rgb
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255


def text_on(rgb: RGB) -> RGB:
    """Black or white, whichever reads better on ``rgb``."""
    return (0, 0, 0) if luminance(rgb) > 0.55 else (255, 255, 255)


def to_256(rgb: RGB) -> int:
    """Nearest xterm-256 index (6x6x6 cube or grey ramp)."""
    def near(v: int) -> int:
        return min(range(6), key=lambda k: abs(_CUBE[k] - v))
    cube = tuple(near(v) for v in rgb)
    cube_rgb = tuple(_CUBE[k] for k in cube)
    grey = min(23, max(0, round((sum(rgb) / 3 - 8) / 10)))
    grey_rgb = (8 + 10 * grey,) * 3
    if _dist(grey_rgb, rgb) < _dist(cube_rgb, rgb):
        return 232 + grey
    return 16 + 36 * cube[0] + 6 * cube[1] + cube[2]


def to_16(rgb: RGB) -> int:
    """SGR background code of the nearest of the 16 ANSI colours."""
    return min(_ANSI16, key=lambda c: _dist(c[0], rgb))[1]


def _dist(a: RGB | tuple, b: RGB | tuple) -> int:
    return sum((x - y) ** 2 for x, y in zip(a, b))


def sgr(background: RGB | None, foreground: RGB | None, depth: str, bold: bool = False,
        underline: bool = False) -> str:
    """The escape sequence that sets these colours at this depth ('' for depth 'none')."""
    if depth == "none":
        return ""
    codes = (["1"] if bold else []) + (["4"] if underline else [])
    for rgb, base in ((foreground, 38), (background, 48)):
        if rgb is None:
            continue
        if depth == "truecolor":
            codes.append(f"{base};2;{rgb[0]};{rgb[1]};{rgb[2]}")
        elif depth == "256":
            codes.append(f"{base};5;{to_256(rgb)}")
        else:
            code = to_16(rgb)
            codes.append(str(code - 10) if base == 38 else str(code))
    return f"\x1b[{';'.join(codes)}m" if codes else ""


RESET = "\x1b[0m"


def paint(text: str, background: RGB | None, foreground: RGB | None, depth: str, bold: bool = False,
          underline: bool = False) -> str:
    start = sgr(background, foreground, depth, bold, underline)
    return f"{start}{text}{RESET}" if start else text


def depth_of(color_system: str | None) -> str:
    """Rich's Console.color_system (None, 'standard', '256', 'truecolor', 'windows') -> our depth."""
    return {"truecolor": "truecolor", "256": "256", "standard": "16", "windows": "16"}.get(
        color_system or "", "none")
