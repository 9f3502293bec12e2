"""Before gpu_check.sh runs anything: every module a step needs imports, and (off --dry) CUDA works.

Why: a lent device gives one session about 15 minutes; a missing package found after the tests or
half the benchmark (issue 24: pytest, tinydb, mnist1d are not on the device machine) wastes it. This
imports each one for real (the carried wheels' too: their own dependencies are checked with them),
prints where each came from, and exits 2 naming what is missing and how to carry it.

    python benchmarks/gpu_preflight.py [--dry]
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

# what the device machine has, and what the carried wheels (benchmarks/gpu_wheels.txt) bring
ON_DEVICE = ("numpy", "yaml", "scipy", "matplotlib")
CARRIED = ("pytest", "pluggy", "iniconfig", "tinydb", "mnist1d", "requests", "plotext")
TORCH = ("torch", "torchvision")


def check(names: tuple[str, ...]) -> list[str]:
    """Import each module; print its version and origin; return the names that failed."""
    missing = []
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 -- any failure to import is what this reports
            print(f"PREFLIGHT: {name}: MISSING ({type(exc).__name__}: {exc})")
            missing.append(name)
            continue
        print(f"PREFLIGHT: {name} {getattr(module, '__version__', '')} from {getattr(module, '__file__', '?')}")
    return missing


def cuda_ready() -> bool:
    import torch

    if not torch.cuda.is_available():
        print("PREFLIGHT: torch.cuda.is_available() is False: no CUDA device")
        return False
    print(f"PREFLIGHT: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    return True


def main() -> int:
    dry = "--dry" in sys.argv[1:]
    # --dry: torch is found, not imported (the rehearsal's benchmark imports it anyway; seconds saved)
    missing = check(ON_DEVICE + CARRIED + (() if dry else TORCH))
    if dry:
        missing += [n for n in TORCH if importlib.util.find_spec(n) is None]
    elif not missing and not cuda_ready():
        return 2
    if missing:
        print(f"PREFLIGHT: missing {', '.join(missing)}: nothing was run. Make the wheels here with "
              "`bash benchmarks/gpu_wheels.sh` (into .whl/) and carry .whl to the device machine.")
        return 2
    print("PREFLIGHT: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
