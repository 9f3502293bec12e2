"""Ray's own output on the driver, kept out of the user's terminal; lost nodes said in one tprm line.

Why: when a node of the cluster dies, Ray prints the dead raylet's last log lines (``(raylet)
store.cc:366: Disconnecting client ...``, ``worker_pool.cc ...``, ANSI-coloured) on the driver's
terminal, dozens of lines in the middle of `tprm run`'s progress bars. ``log_to_driver=False`` (which
the executor sets) only covers the workers' stdout/stderr: Ray 2.x prints its GCS error channel from a
driver thread through ``ray._private.worker.print_to_stdstream`` and its own Python logger ``ray``
to stderr, and offers no public switch for either. ``RayLogRouter`` replaces both sinks, while a Ray
backend is connected, with a writer into the run's folder (``runs/<id>/ray.log``, tprm.engine.rundir);
lines that arrive before the run has a folder are kept and written once it has.

What the user needs to know instead is one line per event, made by ``NodeLossWatch``: "node <ip>
lost; group <jobs> retried (N retries left)".
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without ANSI colour codes."""
    return _ANSI.sub("", text)


class _ToRouter(logging.Handler):
    def __init__(self, router: RayLogRouter) -> None:
        super().__init__(logging.DEBUG)
        self.router = router

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.router.write([f"({record.name}) {record.levelname} {record.getMessage()}"])
        except Exception:  # noqa: BLE001 -- logging must never fail the run
            self.handleError(record)


class RayLogRouter:
    """Routes Ray's driver-side printing into a file (see the module docstring); ``install`` after
    ``ray.init``, ``uninstall`` when the backend closes (the original sinks come back). Each line
    also goes to the ``listeners`` (e.g. a NodeLossWatch's ``ray_line``)."""

    def __init__(self) -> None:
        self.listeners: list = []
        self.path: Path | None = None
        self.pending: list[str] = []
        self.lock = threading.Lock()
        self.installed = False
        self._saved: dict[str, Any] = {}

    def install(self) -> bool:
        """Replace Ray's sinks; False when this Ray has no such sink (its lines then still print)."""
        if self.installed:
            return True
        try:
            from ray._private import worker as ray_worker
        except ImportError:
            return False
        if not callable(getattr(ray_worker, "print_to_stdstream", None)):
            return False
        self._saved["print"] = ray_worker.print_to_stdstream
        ray_worker.print_to_stdstream = self._print_to_stdstream
        logger = logging.getLogger("ray")
        self._saved["handlers"], self._saved["propagate"] = list(logger.handlers), logger.propagate
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.addHandler(_ToRouter(self))
        logger.propagate = False
        self.installed = True
        return True

    def uninstall(self) -> None:
        if not self.installed:
            return
        from ray._private import worker as ray_worker

        ray_worker.print_to_stdstream = self._saved["print"]
        logger = logging.getLogger("ray")
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in self._saved["handlers"]:
            logger.addHandler(handler)
        logger.propagate = self._saved["propagate"]
        self.installed = False

    def _print_to_stdstream(self, data: dict, ignore_prefix: bool = False) -> None:
        """Ray's signature: ``data`` has ``lines``, ``pid`` (e.g. "raylet"), ``is_err``."""
        source = data.get("pid") or "ray"
        self.write([f"({source}) {line}" for line in data.get("lines") or []])

    def open(self, path: Path) -> None:
        """Write to ``path`` from now on (and what came before it)."""
        with self.lock:
            self.path = Path(path)
            text, self.pending = "".join(self.pending), []
        self._append(text)

    def write(self, lines: Iterable[str]) -> None:
        lines = [plain(line).rstrip() for line in lines]
        for listener in list(self.listeners):
            for line in lines:
                listener(line)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._append("".join(f"{stamp} {line}\n" for line in lines))

    def _append(self, text: str) -> None:
        if not text:
            return
        with self.lock:
            if self.path is None:
                self.pending.append(text)
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a") as fh:
                    fh.write(text)
            except OSError:
                pass  # a full disk must not fail the run


def group_text(labels: list[str]) -> str:
    """A group's jobs as the runner's start line names them."""
    return ", ".join(labels[:3]) + (" ..." if len(labels) > 3 else "")


_NODE_DEAD = re.compile(r"There are (\d+|infinite) retries remaining.*node it was running on is dead.*"
                        r"Node IP: ([^,\s]+), node ID: ([0-9a-fA-F]+)", re.S)


class NodeLossWatch:
    """Which running groups a lost node took with it, as one line each for the user.

    A loss is noticed from Ray's own failure line ("Task ... failed. There are N retries remaining ...
    the node it was running on is dead ... Node IP: ip, node ID: id", seen by the router) or from the
    node missing among the alive ones at a look (``nodes``). The groups it names are those in flight
    then that reported from that node (``ran``; any attempt: a retry may already report from another).
    Retries left are Ray's number when its line came within ``grace_s`` of the loss, else
    ``max_retries`` less the losses the group went through before.
    """

    def __init__(self, max_retries: int, *, grace_s: float = 3.0, clock=time.monotonic) -> None:
        self.max_retries, self.grace_s, self.clock = max_retries, grace_s, clock
        self.lock = threading.Lock()
        self.alive: dict[str, str] | None = None         # node id -> ip at the last look
        self.where: dict[str, tuple[list[str], set[str]]] = {}  # group key -> (labels, nodes it reported from)
        self.losses: dict[str, int] = {}                   # group key -> nodes lost under it
        self.lost: dict[str, dict[str, Any]] = {}          # node id -> {ip, since, retries, groups, told}

    def ran(self, key: str, labels: list[str], node: str) -> None:
        with self.lock:
            self.where.setdefault(key, (labels, set()))[1].add(node)

    def ray_line(self, line: str) -> None:
        if (m := _NODE_DEAD.search(line)) is None:
            return
        retries = -1 if m.group(1) == "infinite" else int(m.group(1))
        with self.lock:
            entry = self._lose(m.group(3), m.group(2))
            entry["retries"] = retries if entry["retries"] is None else entry["retries"]

    def nodes(self, alive: dict[str, str]) -> None:
        with self.lock:
            for nid, ip in (self.alive or {}).items():
                if nid not in alive:
                    self._lose(nid, ip)
            self.alive = dict(alive)

    def _lose(self, nid: str, ip: str) -> dict:
        return self.lost.setdefault(nid, {"ip": ip, "since": self.clock(), "retries": None, "groups": None,
                                          "told": False})

    def notes(self, running: set[str]) -> list[str]:
        """The lines ready now; ``running``: the keys of the groups in flight."""
        out = []
        with self.lock:
            for nid, entry in self.lost.items():
                if entry["told"]:
                    continue
                if entry["groups"] is None:
                    groups = [k for k in sorted(running) if k in self.where
                              and any(nid.startswith(node) for node in self.where[k][1])]
                    for key in groups:
                        self.losses[key] = self.losses.get(key, 0) + 1
                    entry["groups"] = groups
                if entry["retries"] is None and self.clock() - entry["since"] < self.grace_s:
                    continue
                entry["told"] = True
                for key in entry["groups"]:
                    left = (entry["retries"] if entry["retries"] is not None
                            else self.max_retries - self.losses[key] + 1)
                    out.append(node_loss_line(entry["ip"], self.where[key][0], left))
        return out


def node_loss_line(ip: str, labels: list[str], left: int) -> str:
    """ "node <ip> lost; group <jobs> retried (N retries left)" (or why not retried)."""
    if left == 0:
        return f"node {ip} lost; group {group_text(labels)} not retried (no retries left: its jobs fail)"
    count = "unlimited retries" if left < 0 else f"{left} {'retry' if left == 1 else 'retries'}"
    return f"node {ip} lost; group {group_text(labels)} retried ({count} left)"
