"""Data-free spectral metrics of a model's weight matrices, computed by the `weightwatcher` package
(Martin & Mahoney's heavy-tailed self-regularisation; the optional extra ``tprm[ww]``).

weightwatcher does the fits; this module only decides what it is shown and keeps its side effects
(prints, logging set-up at import) out of tprm's output:

* **Masked zeros are passed as they are.** A pruned model's weight matrices are analysed whole,
  masked entries exactly 0.0, because that matrix IS the operator the pruned network computes (and
  an eigenvalue spectrum is only defined for a whole matrix: dropping the masked entries leaves no
  matrix). The model is copied first, so the caller's weights (and their exact zeros) are untouched.
* **A Conv1d is shown as the Conv2d it equals** (kernel 1 x k). weightwatcher 0.7 slices a Conv2d
  into one out x in matrix per kernel position, as the literature does, but reads a Conv1d weight
  (out, in, k) as one matrix whose smaller side is the kernel size: with its minimum of 8
  eigenvalues per layer every conv layer of kernel < 8 would be skipped, and a 1-D conv net would
  be measured on its classifier alone (which pruning keeps dense).

Layers weightwatcher skips (fewer than 8 eigenvalues, e.g. a first conv layer with 1 input
channel) do not enter the averages; ``layers`` says how many did.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import warnings
from typing import Any

import torch
from torch import nn

# The layer averages kept (weightwatcher's get_summary names), in the order views show them.
SUMMARY_KEYS = ("alpha", "alpha_weighted", "log_spectral_norm")


def load_weightwatcher() -> Any:
    """The weightwatcher module, imported without its side effects on this process: its import-time
    prints and the root logging handler it installs (``logging.basicConfig``) are removed."""
    root, own = logging.getLogger(), logging.getLogger("weightwatcher")
    handlers, level = list(root.handlers), root.level
    own.setLevel(logging.ERROR)  # its import warns that CUDA is missing, SciPy used for the SVD
    with contextlib.redirect_stdout(io.StringIO()):
        import weightwatcher
    root.handlers[:] = handlers
    root.setLevel(level)
    own.setLevel(logging.ERROR)  # set back to WARNING by its import
    return weightwatcher


def conv1d_as_conv2d(model: nn.Module) -> nn.Module:
    """A CPU float copy of `model` with every Conv1d replaced by a Conv2d of kernel 1 x k holding the
    same weights (for weightwatcher only: the copy is not meant to run)."""
    view = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
    for parent in list(view.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv1d):
                conv = nn.Conv2d(child.in_channels, child.out_channels, (1, child.kernel_size[0]),
                                 bias=child.bias is not None)
                with torch.no_grad():
                    conv.weight.copy_(child.weight.detach().unsqueeze(2))
                setattr(parent, name, conv)
    return view


def ww_summary(model: nn.Module) -> dict[str, Any]:
    """{"alpha", "alpha_weighted", "log_spectral_norm"} averaged over the layers weightwatcher
    analyses (None when it analyses none, or a value is not finite), "layers": how many it did."""
    ww = load_weightwatcher()
    watcher = ww.WeightWatcher(model=conv1d_as_conv2d(model))
    # its fits print notes ("SMALL N PL FIT") and pandas deprecation warnings: not tprm's output
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = watcher.analyze()
    summary = watcher.get_summary(details)
    out: dict[str, Any] = {key: _finite(summary.get(key)) for key in SUMMARY_KEYS}
    out["layers"] = int(len(details))
    return out


def version() -> str:
    """The weightwatcher version that computed the numbers (recorded with them)."""
    return str(load_weightwatcher().__version__)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
