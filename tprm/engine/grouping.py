"""How many jobs of one fusable kind the runner hands a worker at once (a group), per device.

A group is what ``train`` gets in one call. Where its models fuse (a GPU; buffer-free models on
the CPU) a big group is one batched computation: the bigger the better, up to the memory of the
device, shared by the groups that run on it at once. Where they do not fuse (BatchNorm models on
the CPU, or ``execution.fuse: false``) a group would train its models one after another in one
worker, so each job is a group of its own and ``--jobs N`` workers run N of them in parallel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

HEADROOM = 0.2   # fraction of a GPU's free memory left for the allocator, cuDNN and the data
# Why a CPU fused group is spread over the workers (docs/speed.md, measured on the 2-core box)
CPU_SPLIT_REASON = ("its share of the cores (a worker left idle wastes them; smaller groups also "
                    "fit the caches better)")


def fused_group_size(free_bytes: int, per_model_bytes: int, max_fused: int,
                     headroom: float = HEADROOM) -> int:
    """Models of ``per_model_bytes`` that fit in ``free_bytes`` less ``headroom`` (a fraction),
    between 1 (a model that does not fit still runs: alone) and ``max_fused``."""
    if per_model_bytes <= 0:
        return max(1, max_fused)
    fit = int(free_bytes * (1.0 - headroom)) // per_model_bytes
    return max(1, min(max_fused, fit))


def balanced_chunks(members: Sequence[Any], size: int, at_least: int = 1) -> list[list[Any]]:
    """``members`` in consecutive chunks of at most ``size``, at least ``at_least`` chunks (when there
    are enough members), sizes differing by at most one."""
    n = len(members)
    if n == 0:
        return []
    count = min(n, max(math.ceil(n / max(1, size)), at_least))
    base, extra = divmod(n, count)
    out, start = [], 0
    for i in range(count):
        stop = start + base + (1 if i < extra else 0)
        out.append(list(members[start:stop]))
        start = stop
    return out


class GroupSizer:
    """Splits the runner's ready groups (same kind and group key) into the groups it submits.

    ``device``: the run's device setting; ``workers``: groups running at once; ``local``: workers
    run on this machine (the runner can look at its GPUs; with a remote backend it cannot, and GPU
    groups keep ``max_fused``). ``probe(spec)`` builds one model of a job on the CPU (no data).
    """

    def __init__(self, device: str, workers: int, max_fused: int, fuse: bool, *, local: bool = True,
                 probe: Callable[[Any], Any] | None = None):
        self.device, self.workers, self.max_fused = device, max(1, workers), max(1, max_fused)
        self.fuse, self.local = fuse, local
        self.probe = probe or _probe_model
        self._sizes: dict[str, int] = {}
        self._free: int | None = None
        self._where: str | None = None
        self._notes: list[str] = []

    def device_type(self) -> str:
        """Where this run's groups train: cpu, cuda, mps, or "auto" (a remote backend decides)."""
        if self._where is None:  # asked at every scan of the ready jobs: resolved once
            if self.device in ("cpu", "mps"):
                self._where = self.device
            elif not self.local:
                self._where = "cuda" if self.device.startswith("cuda") else "auto"
            else:
                from tprm.engine.executors.local import resolve_device

                self._where = resolve_device(self.device, 0).split(":")[0]
        return self._where

    def split(self, kind: str, key: str, members: Sequence[Any], specs: Sequence[Any]) -> list[list[Any]]:
        """``members`` (jobs of one ready group, ``specs`` theirs) as the groups to submit.

        Training kinds: one job per group where the models do not fuse on the device; on a GPU
        groups sized by memory and spread over the workers; on the CPU chunks of ``max_fused``
        spread over the workers (``--jobs 2``: 80 models as 2 x 40, each on its share of the cores;
        ``--jobs 1``: one group on every core, ``execution.threads: auto``).
        Other kinds run one job after another in a worker: spread over the workers.
        """
        if kind not in ("dense", "retrain"):
            return balanced_chunks(members, self.max_fused, self.workers)
        sam = any(float(s.schedule.get("sam_rho") or 0.0) > 0 for s in specs)
        size = self.size(f"{key}/sam={sam}", specs[0], sam)
        if size > 1 and self.device_type() == "cuda":
            return balanced_chunks(members, size, self.workers)
        # local CPU workers: a fused group per worker. A Ray cluster keeps whole groups (as before):
        # grouped kernels round differently per group size, and a run on Ray gives the numbers of a
        # local --jobs 1 run at the same thread count (tests/test_ray.py)
        if size > 1 and self.local and self.workers > 1 and len(members) > 1:
            groups = balanced_chunks(members, size, self.workers)
            if len(groups) > math.ceil(len(members) / size):
                self._notes.append(f"split {kind} x{len(members)} into {len(groups)} fused groups of "
                                   f"{len(groups[-1])}-{len(groups[0])}: {self.workers} CPU workers, each "
                                   f"with {CPU_SPLIT_REASON}")
            return groups
        return [list(members[i:i + size]) for i in range(0, len(members), size)]

    def take_notes(self) -> list[str]:
        """Why groups were split since the last call (for the run log)."""
        notes, self._notes = self._notes, []
        return notes

    def size(self, key: str, spec: Any, sam: bool = False) -> int:
        """The largest group of such jobs to submit (cached per key)."""
        if key not in self._sizes:
            try:
                self._sizes[key] = self._size(spec, sam)
            except Exception:  # noqa: BLE001 -- e.g. a model factory that fails: the worker records it
                self._sizes[key] = self.max_fused
        return self._sizes[key]

    def _size(self, spec: Any, sam: bool) -> int:
        from tprm.science.train import bytes_per_model, fuses_on

        where = self.device_type()
        if where == "auto":
            return self.max_fused
        if not self.fuse:
            return 1
        model = self.probe(spec)
        if not fuses_on(model, where):
            return 1
        if where != "cuda" or not self.local or not _cuda_devices():
            return self.max_fused
        per_model = bytes_per_model(model, int(spec.schedule["batch_size"]), _input_shape(spec), sam=sam,
                                    precision=spec.precision)
        return fused_group_size(self._free_per_group(), per_model, self.max_fused)

    def _free_per_group(self) -> int:
        """Free memory of the fullest GPU this run uses, divided by the groups that share it."""
        if self._free is None:
            import torch

            if self.device.startswith("cuda:"):
                gpus, per_gpu = [int(self.device.split(":")[1])], self.workers
            else:  # auto / cuda: worker slot i runs on GPU i % n (resolve_device)
                n = torch.cuda.device_count()
                gpus, per_gpu = list(range(min(n, self.workers))), math.ceil(self.workers / n)
            self._free = min(torch.cuda.mem_get_info(g)[0] for g in gpus) // per_gpu
        return self._free


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _input_shape(spec: Any) -> tuple[int, ...]:
    from tprm.science.dataspec import DataSpec

    return tuple(DataSpec(**spec.data).input_shape)


def _probe_model(spec: Any):
    """One model of the job, built on the CPU from its spec alone (the data set's shape, no data)."""
    from tprm.engine.executors.local import model_for
    from tprm.science.dataspec import DataSpec

    return model_for(spec, DataSpec(**spec.data), "cpu")
