"""Save SVG screenshots of the Plot screen's heat maps (80x24 and 120x40) from a finished store.

    PYTHONPATH=. python docs/img/make_screenshots.py STORE RECIPE [OUT_DIR]

The pictures in docs/img/ come from a quickstart run (`tprm run quickstart --store STORE`).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tprm.tui.app import TprmApp


async def shoot(store: str, recipe: str, out: Path, size: tuple[int, int], metric_steps: int,
                name: str, zoom: bool = False) -> Path:
    app = TprmApp(store, poll_interval=3600)
    app.recipe = recipe
    async with app.run_test(size=size) as pilot:
        await pilot.press("4")
        for _ in range(300):
            await pilot.pause(0.1)
            screen = app.screen
            if getattr(screen, "plot_data", None) and getattr(screen, "cells", None):
                break
        for _ in range(metric_steps):
            await pilot.press("right_square_bracket")
            await pilot.pause(0.5)
            await app.workers.wait_for_complete()
        if zoom:
            await pilot.press("z")
            await pilot.pause(0.5)
        await app.workers.wait_for_complete()
        await pilot.pause(0.5)
        path = out / f"{name}-{size[0]}x{size[1]}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        return path


def main() -> None:
    store, recipe = sys.argv[1], sys.argv[2]
    out = Path(sys.argv[3] if len(sys.argv) > 3 else Path(__file__).parent)
    for size in ((80, 24), (120, 40)):
        print(asyncio.run(shoot(store, recipe, out, size, 0, "plot-regimes")))
        print(asyncio.run(shoot(store, recipe, out, size, 3, "plot-mc")))
    print(asyncio.run(shoot(store, recipe, out, (80, 24), 3, "plot-mc-zoom", zoom=True)))


if __name__ == "__main__":
    main()
