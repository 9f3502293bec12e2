"""torchvision's dataset classes, minus their per-file md5 checks, and downloading a built-in set.

Files written in the same format (our tests, a re-packed copy) must stay readable: the checksums are
compared by tprm.science.datafiles instead, which flags such files as not the official ones. Both
datafiles (fetching) and datareaders (reading) use this module, which imports neither.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from tprm.science.datasets_registry import DatasetEntry

__all__ = ["download", "torchvision_classes"]


@functools.cache
def torchvision_classes() -> dict[str, type]:
    """torchvision's dataset classes by name, those with per-file md5 checks made lenient."""
    import torchvision.datasets as tvd

    class CIFAR10(tvd.CIFAR10):
        train_list = [[name, None] for name, _ in tvd.CIFAR10.train_list]
        test_list = [[name, None] for name, _ in tvd.CIFAR10.test_list]
        meta = {**tvd.CIFAR10.meta, "md5": None}

    class CIFAR100(tvd.CIFAR100):
        train_list = [[name, None] for name, _ in tvd.CIFAR100.train_list]
        test_list = [[name, None] for name, _ in tvd.CIFAR100.test_list]
        meta = {**tvd.CIFAR100.meta, "md5": None}

    class SVHN(tvd.SVHN):
        def _check_integrity(self) -> bool:
            return os.path.isfile(os.path.join(self.root, self.filename))

    class STL10(tvd.STL10):
        def _check_integrity(self) -> bool:  # only the labelled splits are read (no 2.5 GB unlabeled_X)
            names = [n for n, _ in self.train_list[:2] + self.test_list]
            return all(os.path.isfile(os.path.join(self.root, self.base_folder, n)) for n in names)

    # MNIST-like classes find their files under root/<class name>/raw: used as they are.
    return {"CIFAR10": CIFAR10, "CIFAR100": CIFAR100, "SVHN": SVHN, "STL10": STL10,
            "MNIST": tvd.MNIST, "FashionMNIST": tvd.FashionMNIST, "KMNIST": tvd.KMNIST}


def download(entry: DatasetEntry, root: Path) -> None:
    """Download ``entry``'s files into ``root`` with torchvision (only ever called when asked)."""
    from tprm.science.dataspec import DataMissingError

    cls = torchvision_classes()[entry.torchvision or ""]
    root.mkdir(parents=True, exist_ok=True)
    try:
        for split in entry.splits.values():
            cls(str(root), download=True, **split)
    except Exception as exc:  # network / archive errors: say where the files should go instead
        raise DataMissingError(
            f"{entry.name}: download into {root} failed ({type(exc).__name__}: {exc}); "
            f"put {', '.join(entry.file_names)} into {root / entry.folder} by hand"
        ) from exc
