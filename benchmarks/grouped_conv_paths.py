"""Per-layer cost of the quickstart's grouped 1-D convolution (K models as ``groups=K``) against the
alternatives considered for issue 26: is there a faster way than mkldnn's grouped kernels?

For each conv layer of the quickstart net (K = 80, batch 128, kernel 5, stride 2, padding 2) it times,
in one process and alternating: aten's forward; aten's backward (input gradient alone, weight+bias
gradient alone); the input gradient as a transposed convolution and as a stride-1 forward convolution
of the zero-dilated gradient; the weight gradient as an unfold (im2col) + ``bmm``. Each alternative is
first checked against aten in float64 (max abs difference printed). Ratios are aten / alternative
(> 1: the alternative is faster). The whole-step A/B lives in docs/speed.md.

    python benchmarks/grouped_conv_paths.py [--threads 1 2] [--k 80] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

STRIDE, PAD, KERNEL, WIDTH, BATCH = 2, 2, 5, 24, 128


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median-free mean of ``repeat`` calls after 3 warm-up calls, in ms."""
    for _ in range(3):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1000


def grad_input_transposed(go, w, length, k):
    extra = length - ((go.shape[-1] - 1) * STRIDE - 2 * PAD + KERNEL)
    return F.conv_transpose1d(go, w, None, STRIDE, PAD, extra, k)


def grad_input_dilated(go, w, length, k):
    """The input gradient as a stride-1 convolution of the zero-dilated gradient, kernel flipped."""
    _, c, taps = w.shape
    z = go.new_zeros(go.shape[0], go.shape[1], STRIDE * (go.shape[-1] - 1) + 1)
    z[..., ::STRIDE] = go
    left = taps - 1 - PAD
    flipped = w.view(k, -1, c, taps).transpose(1, 2).flip(-1).reshape(k * c, -1, taps)
    return F.conv1d(F.pad(z, (left, length + taps - 1 - left - z.shape[-1])), flipped, groups=k)


def grad_weight_unfold(go, x, k):
    """The weight gradient as im2col + one bmm over the K models: [K * O, C, kernel]."""
    batch, kc, length = x.shape
    c, lo = kc // k, go.shape[-1]
    cols = F.pad(x, (PAD, PAD)).view(batch, k, c, length + 2 * PAD).unfold(3, KERNEL, STRIDE)
    cols = cols.permute(1, 2, 4, 0, 3).reshape(k, c * KERNEL, batch * lo)
    g = go.view(batch, k, -1, lo).permute(1, 0, 3, 2).reshape(k, batch * lo, -1)
    return torch.bmm(cols, g).view(k, c, KERNEL, -1).permute(0, 3, 1, 2).reshape(-1, c, KERNEL)


def layer_rows(c: int, length: int, k: int, repeat: int) -> None:
    x = torch.randn(BATCH, k * c, length, dtype=torch.float64)
    w = torch.randn(k * WIDTH, c, KERNEL, dtype=torch.float64)
    bias = torch.randn(k * WIDTH, dtype=torch.float64)

    def backward(x, w, go, mask):
        return torch.ops.aten.convolution_backward(go, x, w, [k * WIDTH], [STRIDE], [PAD], [1], False, [0], k, mask)

    go = torch.randn_like(F.conv1d(x, w, bias, STRIDE, PAD, 1, k))
    ref_x, ref_w, _ = backward(x, w, go, [True, True, True])
    checks = {"transposed": (grad_input_transposed(go, w, length, k) - ref_x).abs().max().item(),
              "dilated": (grad_input_dilated(go, w, length, k) - ref_x).abs().max().item(),
              "unfold": (grad_weight_unfold(go, x, k) - ref_w).abs().max().item()}
    x, w, bias, go = x.float(), w.float(), bias.float(), go.float()
    t = {"forward": timed(lambda: F.conv1d(x, w, bias, STRIDE, PAD, 1, k), repeat),
         "aten grad_x": timed(lambda: backward(x, w, go, [True, False, False]), repeat),
         "transposed": timed(lambda: grad_input_transposed(go, w, length, k), repeat),
         "dilated": timed(lambda: grad_input_dilated(go, w, length, k), repeat),
         "aten grad_w": timed(lambda: backward(x, w, go, [False, True, True]), repeat),
         "unfold": timed(lambda: grad_weight_unfold(go, x, k), repeat)}
    print(f"  layer C={c:2d} L={length:2d}: " + ", ".join(f"{n} {v:.1f} ms" for n, v in t.items()))
    print(f"    aten/alt: grad_x transposed {t['aten grad_x'] / t['transposed']:.2f}x, dilated "
          f"{t['aten grad_x'] / t['dilated']:.2f}x; grad_w unfold {t['aten grad_w'] / t['unfold']:.2f}x"
          f"  (float64 max diff: " + ", ".join(f"{n} {v:.1e}" for n, v in checks.items()) + ")")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--k", type=int, default=80, help="models in the group")
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    print(f"K {a.k}, batch {BATCH}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for threads in a.threads:
        torch.set_num_threads(threads)
        print(f"threads {threads}:")
        for c, length in ((1, 40), (WIDTH, 20), (WIDTH, 10)):
            layer_rows(c, length, a.k, a.repeat)


if __name__ == "__main__":
    main()
