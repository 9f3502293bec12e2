"""Artifact files (checkpoints, masks, curves) kept next to the store, named by job hash.

Layout: ``<root>/artifacts/<hash[:2]>/<hash>.<name>.pt`` plus per-job logs at ``<root>/logs/<hash>.log``.
Only large things live here; the TinyDB store keeps small records. Every file is written to a temp
name in the same directory, fsynced and renamed, so a reader (or a crash) never sees half a file.
Files hold ``{"format": FORMAT_VERSION, "payload": obj}`` and are read back with
``torch.load(weights_only=True)``: no pickled code is ever executed when loading.

Beside a finished job's files sits its metadata, ``<hash>.job.json`` (written by the store when
the job finishes): job hash, kind, label, deps, recipe hashes and names, state, result,
provenance and ``files`` ({name: {size, sha256}} recorded when the job finished). ``load``
checks a file against it before reading; ``tprm store check`` checks every file; ``tprm store
repair`` rebuilds the job index from these files alone.

torch is imported lazily so that the CLI can list and poll a store without paying for it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import IO, Any, Callable

FORMAT_VERSION = 1
HASH_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,127}")
NAME_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.-]{0,127}")
TEMP_SUFFIX = ".tmp"
META_SUFFIX = ".job.json"
META_FORMAT = 1
# The files each job kind writes (used for jobs finished before per-job file lists were recorded).
EXPECTED_FILES = {"dense": ("checkpoints", "curves"), "prune": ("pruned",),
                  "retrain": ("model", "curves"), "pairs": ("lmc",), "hessian": (),
                  "ww": ()}


class ArtifactError(Exception):
    """A missing, truncated, corrupt or unsupported artifact file, or an object that cannot be saved."""


def check_hash(job_hash: str) -> str:
    """Return `job_hash` if it is usable in a file name, else raise ArtifactError."""
    if not isinstance(job_hash, str) or not HASH_RE.fullmatch(job_hash):
        raise ArtifactError(f"job hash {job_hash!r}: expected 1-128 characters from [0-9A-Za-z_-]")
    return job_hash


def check_name(name: str) -> str:
    """Return `name` if it is a valid artifact name (e.g. "state", "mask", "epoch_8"), else raise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name.endswith(TEMP_SUFFIX):
        raise ArtifactError(f"artifact name {name!r}: expected 1-128 characters from [0-9A-Za-z_.-], "
                            "starting with a letter or digit")
    return name


def parse_file_name(path: Path | str) -> tuple[str, str] | None:
    """(hash, name) of a finished artifact file name, or None for anything else (temp files too)."""
    base = Path(path).name
    if base.startswith(".") or not base.endswith(".pt"):
        return None
    job_hash, dot, name = base[:-3].partition(".")
    if not dot or not HASH_RE.fullmatch(job_hash) or not NAME_RE.fullmatch(name):
        return None
    return job_hash, name


def split_file_name(path: Path | str) -> tuple[str, str]:
    """(hash, name) of a path `Artifacts.files_of` listed (ArtifactError for anything else)."""
    parsed = parse_file_name(path)
    if parsed is None:
        raise ArtifactError(f"{path}: not a finished artifact file name")
    return parsed


def file_digest(path: Path) -> dict:
    """{"size", "sha256", "mtime_ns"} of a file (read in 1 MiB blocks)."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        mtime = os.fstat(fh.fileno()).st_mtime_ns
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return {"size": size, "sha256": h.hexdigest(), "mtime_ns": mtime}


def file_problem(path: Path, want: dict | None, deep: bool = True) -> str | None:
    """Why `path` does not match its record `want` ({size, sha256}): "missing", "size ...",
    "checksum mismatch"; None when it matches (or nothing is recorded and the file exists).
    `deep=False` reads the file only when its modification time differs from the recorded one
    (a stat otherwise, like git's index)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    if not isinstance(want, dict):
        return None
    if isinstance(want.get("size"), int) and st.st_size != want["size"]:
        return f"size {st.st_size} != recorded {want['size']}"
    if not deep and want.get("mtime_ns") not in (None, st.st_mtime_ns):
        deep = True
    if deep and isinstance(want.get("sha256"), str) and file_digest(path)["sha256"] != want["sha256"]:
        return "checksum mismatch"
    return None


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort: not every platform can open directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path_for(target: Path) -> Path:
    """A unique hidden temp name next to `target` (same directory, so os.replace is atomic)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def atomic_write(target: Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write a file through `write(fh)` to a temp name beside it, fsync, then rename over
    `target`: readers see the old file or the whole new one, never a part."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(target.parent)
    return target


def _plain(obj: Any, where: str) -> Any:
    """Copy of `obj` with tensors detached and compacted; raise ArtifactError on non-plain values.

    Compacting matters: a slice of a stacked (fused) parameter shares the whole stack's storage,
    and torch.save would otherwise write the entire stack into every job's file.
    """
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if t.is_sparse or t.layout != torch.strided:
            return t.clone()
        if t.untyped_storage().nbytes() != t.numel() * t.element_size() or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)
        return t
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ArtifactError(f"{where}: dict key {key!r} is a {type(key).__name__}; "
                                    "keys must be str, int, float or bool")
            out[key] = _plain(value, f"{where}[{key!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(items) if isinstance(obj, tuple) else items
    raise ArtifactError(f"{where} is a {type(obj).__name__}; only tensors, dicts, lists, tuples, "
                        "numbers, strings and None can be saved as artifacts")


class Artifacts:
    """Reads and writes one store's artifact files; safe to use from many processes at once."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.dir = self.root / "artifacts"
        self.logs_dir = self.root / "logs"

    # -- naming --------------------------------------------------------------------------------
    def path(self, job_hash: str, name: str) -> Path:
        """Where artifact `name` of job `job_hash` lives (whether or not it exists)."""
        check_hash(job_hash)
        check_name(name)
        return self.dir / job_hash[:2] / f"{job_hash}.{name}.pt"

    def exists(self, job_hash: str, name: str) -> bool:
        return self.path(job_hash, name).is_file()

    def log_path(self, job_hash: str) -> Path:
        """The per-job log file (the directory is created; the file is not)."""
        check_hash(job_hash)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        return self.logs_dir / f"{job_hash}.log"

    def all_files(self) -> list[Path]:
        """Every finished artifact file (temp files excluded), sorted."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*/*.pt") if parse_file_name(p) and p.is_file())

    def files_of(self, job_hash: str) -> list[Path]:
        """All finished artifact files of one job, sorted."""
        check_hash(job_hash)
        shard = self.dir / job_hash[:2]
        if not shard.is_dir():
            return []
        return sorted(p for p in shard.glob(f"{job_hash}.*.pt")
                      if (parsed := parse_file_name(p)) and parsed[0] == job_hash)

    def meta_path(self, job_hash: str) -> Path:
        """The job's metadata file ``<hash>.job.json`` beside its artifacts."""
        check_hash(job_hash)
        return self.dir / job_hash[:2] / f"{job_hash}{META_SUFFIX}"

    def all_metas(self) -> list[Path]:
        """Every job metadata file, sorted."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob(f"*/*{META_SUFFIX}")
                      if HASH_RE.fullmatch(p.name[:-len(META_SUFFIX)]) and p.is_file())

    def manifest(self, job_hash: str) -> dict:
        """{name: {size, sha256}} of the job's artifact files as they are now."""
        return {parse_file_name(p)[1]: file_digest(p) for p in self.files_of(job_hash)}

    def write_meta(self, job_hash: str, meta: dict) -> Path:
        """Atomically write the job's metadata file (JSON)."""
        text = json.dumps({"format": META_FORMAT, **meta}, indent=1, sort_keys=True, default=str)
        return atomic_write(self.meta_path(job_hash), lambda fh: fh.write(text.encode()))

    def read_meta(self, job_hash: str) -> dict | None:
        """The job's metadata, or None when absent or unreadable (never raises for a bad file)."""
        return read_meta_file(self.meta_path(job_hash), job_hash)

    def temp_files(self) -> list[Path]:
        """Leftover temp files of interrupted writes (gc removes the old ones)."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob(f"*/.*{TEMP_SUFFIX}") if p.is_file())

    # -- writing -------------------------------------------------------------------------------
    def save(self, job_hash: str, name: str, obj: Any) -> Path:
        """Atomically write `obj` (tensors, dicts, lists, tuples, numbers, strings, None)."""
        import torch

        target = self.path(job_hash, name)
        payload = _plain(obj, f"artifact {job_hash}.{name}")
        return atomic_write(target, lambda fh: torch.save({"format": FORMAT_VERSION,
                                                            "payload": payload}, fh))

    def put_file(self, job_hash: str, name: str, src: IO[bytes]) -> Path:
        """Atomically install an artifact file copied from a binary stream (used by bundle import)."""
        return atomic_write(self.path(job_hash, name),
                            lambda fh: shutil.copyfileobj(src, fh, 1 << 20))

    def remove(self, job_hash: str, name: str | None = None) -> list[Path]:
        """Delete one artifact, or every artifact of the job when `name` is None; returns what went."""
        paths = self.files_of(job_hash) if name is None else [self.path(job_hash, name)]
        removed = []
        for p in paths:
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed.append(p)
        return removed

    # -- reading -------------------------------------------------------------------------------
    def load(self, job_hash: str, name: str, map_location: Any = "cpu") -> Any:
        """The saved object; ArtifactError (one line, with the path) if missing/corrupt/unsupported."""
        import torch

        target = self.path(job_hash, name)
        if not target.is_file():
            raise ArtifactError(f"{target}: artifact missing (job {job_hash} has no '{name}' output); "
                                "the next `tprm run` recomputes it")
        raw = target.read_bytes()
        want = ((self.read_meta(job_hash) or {}).get("files") or {}).get(name)
        if isinstance(want, dict) and (len(raw) != want.get("size") or
                                       hashlib.sha256(raw).hexdigest() != want.get("sha256")):
            raise ArtifactError(f"{target}: artifact fails its checksum (changed since job "
                                f"{job_hash} wrote it); run `tprm store check`, the next `tprm run` "
                                "recomputes it")
        try:
            blob = torch.load(io.BytesIO(raw), map_location=map_location, weights_only=True)
        except Exception as exc:  # noqa: BLE001 -- zip, pickle, EOF and torch errors all mean "unreadable"
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise ArtifactError(f"{target}: truncated or corrupt artifact "
                                f"({type(exc).__name__}: {first})") from None
        if not isinstance(blob, dict) or "format" not in blob or "payload" not in blob:
            raise ArtifactError(f"{target}: not a tprm artifact (no format header)")
        if blob["format"] != FORMAT_VERSION:
            raise ArtifactError(f"{target}: artifact format {blob['format']!r} is not supported; "
                                f"this tprm reads format {FORMAT_VERSION} (upgrade tprm or rerun the job)")
        return blob["payload"]


def read_meta_file(path: Path, job_hash: str | None = None) -> dict | None:
    """A job metadata file's contents, or None when absent, unreadable or not for `job_hash`."""
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("hash"), str) \
            or (job_hash is not None and meta["hash"] != job_hash):
        return None
    return meta
