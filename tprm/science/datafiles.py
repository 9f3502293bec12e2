"""The files of the built-in datasets on disk: where they go, whether they are there and official,
their content digests, and fetching them from a folder or an archive. Torch-free: `tprm data list`
and planning check files without importing torch (reading them is tprm.science.datareaders).

Official means every file's md5 equals the one torchvision lists for it (datasets_registry.py).
Files that differ stay usable (a re-packed copy, or the tiny sets tests write) but are flagged
``not the official files (checksum differs)`` wherever the data is described.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tprm.science.datasets_registry import DATASET_NAMES, IMAGEFOLDER_SPLITS, REGISTRY, DatasetEntry
from tprm.science.dataspec import DataMissingError, DataSpec, imagefolder_classes

__all__ = ["NOT_OFFICIAL", "class_images", "dataset_status", "ensure_files", "expected_files", "fetch_dataset",
           "file_digests", "files_note", "imagefolder_test_dir", "torchvision_root"]

NOT_OFFICIAL = "not the official files (checksum differs)"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def torchvision_root(name: str, root: Path) -> Path:
    """The root a set is read from: a root that IS the set's folder (``cifar-10-batches-py``, or
    ``MNIST`` / ``MNIST/raw``) stands for the folder above it."""
    entry = REGISTRY.get(name)
    parts = Path(entry.folder).parts if entry is not None else ()
    if parts and (root / entry.folder).is_dir():
        return root
    for k in range(len(parts), 0, -1):
        if root.parts[-k:] == parts[:k]:
            return root.parents[k - 1]
    return root


def imagefolder_test_dir(root: Path) -> Path:
    """``root/test``, else ``root/val`` (Imagenette and TinyImageNet ship a val/ folder)."""
    for name in IMAGEFOLDER_SPLITS[1]:
        if (root / name).is_dir():
            return root / name
    raise DataMissingError(f"imagefolder: {root} has no {' or '.join(IMAGEFOLDER_SPLITS[1])} folder of class "
                           f"folders next to {IMAGEFOLDER_SPLITS[0]}/")


def class_images(folder: Path) -> list[Path]:
    """The image files under one class folder (searched recursively), in a fixed order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _image_files(root: Path) -> list[str]:
    """Every image of an imagefolder set, as paths relative to ``root`` in a fixed order."""
    classes = imagefolder_classes(root)
    return [str(p.relative_to(root)) for split in (root / IMAGEFOLDER_SPLITS[0], imagefolder_test_dir(root))
            for cls in classes for p in class_images(split / cls)]


def expected_files(name: str, root: Path) -> tuple[Path, list[str]]:
    """The directory ``name`` is read from and the file names read there (imagefolder: its images)."""
    entry = REGISTRY[name]
    if entry.reader == "imagefolder":
        return root, _image_files(root)
    return (root / entry.folder if entry.folder else root), entry.file_names


_DIGEST_CACHE = ".tprm-sha256.json"


def file_digests(folder: Path, files: list[str]) -> dict[str, dict[str, str]]:
    """{file: {"sha256", "md5"}}, reusing ``folder/.tprm-sha256.json`` entries whose size and mtime
    still match (one read of each new or changed file computes both digests)."""
    cache_path = folder / _DIGEST_CACHE
    try:
        cache = json.loads(cache_path.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    digests: dict[str, dict[str, str]] = {}
    changed = False
    for name in files:
        st = (folder / name).stat()
        entry = cache.get(name)
        if isinstance(entry, dict) and entry.get("size") == st.st_size and \
                entry.get("mtime_ns") == st.st_mtime_ns and "md5" in entry:
            digests[name] = {"sha256": entry["sha256"], "md5": entry["md5"]}
            continue
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
                md5.update(block)
        digests[name] = {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}
        cache[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, **digests[name]}
        changed = True
    if changed:
        _write_cache(cache_path, cache)
    return digests


def _write_cache(path: Path, cache: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # read-only data directory: digests are still correct, just not cached
    finally:
        tmp.unlink(missing_ok=True)


def files_official(entry: DatasetEntry, folder: Path, files: list[str]) -> bool | None:
    """True when every file's md5 is the official one, False when one differs, None when the set
    has no official checksums (mnist1d is generated; imagefolder is the user's)."""
    official = entry.official_md5
    if not official:
        return None
    digests = file_digests(folder, [f for f in files if f in official])
    return all(digests[f]["md5"] == official[f] for f in digests)


def files_note(spec: DataSpec, root: Path) -> str | None:
    """``"<title>: not the official files (checksum differs)"`` for present files that differ, else None."""
    entry = spec.info
    try:
        folder, files = expected_files(spec.name, torchvision_root(spec.name, root))
    except DataMissingError:
        return None
    if any(not (folder / f).is_file() for f in files):
        return None
    return f"{entry.title}: {NOT_OFFICIAL}" if files_official(entry, folder, files) is False else None


def dataset_status(name: str, root: Path | str) -> dict[str, Any]:
    """Whether a set's files are in ``root`` and whether they are the official ones."""
    if name not in DATASET_NAMES:
        raise ValueError(f"dataset: unknown {name!r}; allowed: {', '.join(DATASET_NAMES)}")
    entry = REGISTRY[name]
    base = {"name": name, "title": entry.title, "folder": None, "missing": [], "bytes": 0, "official": None}
    if entry.reader == "mnist1d":
        return dict(base, present=True, note="generated offline by the mnist1d package")
    if entry.reader == "imagefolder":
        return dict(base, present=False, note="your images: set dataset.root (train/ and test/ class folders)")
    folder, files = expected_files(name, torchvision_root(name, Path(root)))
    missing = [f for f in files if not (folder / f).is_file()]
    size = sum((folder / f).stat().st_size for f in files if f not in missing)
    official = None if missing else files_official(entry, folder, files)
    note = ("partial" if len(missing) < len(files) else "not downloaded") if missing else \
        (NOT_OFFICIAL if official is False else "present")
    return dict(base, present=not missing, folder=str(folder), missing=missing, bytes=size,
                official=official, note=note)


def fetch_dataset(name: str, root: Path | str, source: Path | str | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Put a set's files into ``root``: from ``source`` (a folder holding them, or a .tar/.tar.gz/.tgz
    archive such as the official one) or else downloaded by torchvision (which checks the archive's
    md5). Says when the files are not the official ones. Returns :func:`dataset_status` after."""
    say = progress or (lambda _msg: None)
    entry = REGISTRY[name]
    if entry.reader == "mnist1d":
        say("mnist1d is generated offline; nothing to fetch")
        return dataset_status(name, root)
    if entry.reader == "imagefolder":
        raise DataMissingError("imagefolder: nothing to fetch; set dataset.root to a folder with train/ and "
                               "test/ (or val/) holding one folder of images per class")
    status = dataset_status(name, root)
    if status["present"]:
        say(f"{entry.title} is already in {status['folder']}")
        return status
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder, files = expected_files(name, root)
    if source is not None:
        _copy_in(entry, Path(source).expanduser(), root, folder, say)
    else:
        say(f"downloading {entry.title} into {root} (torchvision; checks the archive's md5)")
        ensure_files(DataSpec(name=name, root=str(root), download=True), root)
    status = dataset_status(name, root)
    if not status["present"]:
        raise DataMissingError(f"{name}: still missing {', '.join(status['missing'])} in {status['folder']}")
    say(f"{entry.title}: {len(files)} files, {status['bytes'] / 1e6:.1f} MB in {status['folder']}"
        + (f"; {NOT_OFFICIAL}" if status["official"] is False else ""))
    return status


def _copy_in(entry: DatasetEntry, src: Path, root: Path, folder: Path, say: Callable[[str], None]) -> None:
    """Copy (or extract) the set's files from ``src`` into ``folder``, all or nothing."""
    files = entry.file_names
    staging = root / f".fetch-{entry.name}-{os.getpid()}"  # complete sets only: moved in when all is there
    staging.mkdir(parents=True, exist_ok=True)
    try:
        if src.is_dir():
            inner = next((src / p for p in (entry.folder, Path(entry.folder).name)
                          if p and (src / p).is_dir()), src)
            absent = [f for f in files if not (inner / f).is_file()]
            if absent:
                raise DataMissingError(f"{src}: has no {', '.join(absent)}; expected {', '.join(files)}")
            for i, f in enumerate(files, 1):
                say(f"copying {f} ({i}/{len(files)})")
                shutil.copy2(inner / f, staging / f)
        elif src.is_file() and tarfile.is_tarfile(src):
            with tarfile.open(src) as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile() and Path(m.name).name in files}
                absent = [f for f in files if f not in members]
                if absent:
                    raise DataMissingError(f"{src}: holds no {', '.join(absent)}; expected {', '.join(files)}")
                for i, f in enumerate(files, 1):
                    say(f"extracting {f} ({i}/{len(files)}, {members[f].size / 1e6:.1f} MB)")
                    with tar.extractfile(members[f]) as fh, open(staging / f, "wb") as out:
                        shutil.copyfileobj(fh, out)
        else:
            raise DataMissingError(f"{src}: not a folder or a .tar/.tar.gz archive of {entry.title}")
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            os.replace(staging / f, folder / f)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_files(spec: DataSpec, root: Path) -> tuple[Path, list[str]]:
    """Check the files exist, downloading them when ``spec.download``; else raise DataMissingError."""
    folder, files = expected_files(spec.name, root)
    missing = [f for f in files if not (folder / f).is_file()]
    if spec.info.reader == "imagefolder" and not files:
        raise DataMissingError(f"imagefolder: no images under {root}/train and {root}/test (or val)")
    if not missing:
        return folder, files
    if not spec.download:
        raise DataMissingError(
            f"{spec.name}: missing {', '.join(missing)} in {folder} (expected {', '.join(files)}); "
            f"put the files there or set dataset.download: true to fetch them"
        )
    from tprm.science.tvclasses import download

    download(spec.info, root)
    still = [f for f in files if not (folder / f).is_file()]
    if still:
        raise DataMissingError(f"{spec.name}: after download, still missing {', '.join(still)} in {folder}")
    return folder, files
