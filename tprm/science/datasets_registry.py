"""Every built-in dataset, one entry each: adding a dataset is adding one ``DatasetEntry`` here.

Torch-free facts only (planning and the read-only commands never import torch): where the files
live under a data root, their official md5 checksums (as torchvision lists them), the torchvision
class and split arguments that read them, the sample shape, the classes, and the default
normalisation/augmentation. ``tprm.science.datareaders`` turns an entry into tensors.

Normalisation defaults: CIFAR-10 uses the mean/std copied across most public CIFAR code (and by the
paper's code): the std (0.2023, 0.1994, 0.2010) is NOT CIFAR-10's true per-pixel std (about
(0.247, 0.243, 0.261)); it is kept for fidelity with the paper. The other sets use the statistics
most commonly quoted for them in the same convention (imagefolder: ImageNet's). mnist1d arrives
standardised by its generator, so its default normalisation is the identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DatasetEntry", "REGISTRY", "DATASET_NAMES", "IMAGEFOLDER_SPLITS"]

# imagefolder: (train folder, test folder candidates in order) under dataset.root
IMAGEFOLDER_SPLITS: tuple[str, tuple[str, ...]] = ("train", ("test", "val"))


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset: its facts, its files and how torchvision reads them.

    ``reader`` names the reading routine in ``tprm.science.datareaders`` (one per file format);
    ``splits`` holds the keyword arguments of the torchvision class per split. ``files`` are
    ``(name, official md5 or None)`` under ``root/folder``. ``num_classes`` 0 means "counted from
    the class folders" (imagefolder), whose ``input_shape`` is for the default ``size``.
    """

    name: str
    title: str
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool
    reader: str
    torchvision: str | None = None
    splits: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    folder: str = ""
    files: tuple[tuple[str, str | None], ...] = ()
    n_train: int = 50000
    n_test: int = 10000
    default_size: int | None = None  # imagefolder: the resize when dataset.size is unset

    @property
    def file_names(self) -> list[str]:
        return [name for name, _ in self.files]

    @property
    def official_md5(self) -> dict[str, str]:
        return {name: md5 for name, md5 in self.files if md5}


_TRAIN_TEST = {"train": {"train": True}, "test": {"train": False}}
_SPLIT = {"train": {"split": "train"}, "test": {"split": "test"}}


def _mnist_like(name: str, title: str, cls: str, md5s: tuple[str, str, str, str],
                mean: float, std: float) -> DatasetEntry:
    """The MNIST family: four gzipped idx files under <class name>/raw, 28x28 grey, 10 classes."""
    files = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return DatasetEntry(name, title, 10, (1, 28, 28), (mean,), (std,), 0, False, "mnist", cls, _TRAIN_TEST,
                        f"{cls}/raw", tuple(zip(files, md5s)), 60000, 10000)


_ENTRIES = (
    DatasetEntry("mnist1d", "MNIST-1D", 10, (1, 40), (0.0,), (1.0,), 0, False, "mnist1d"),
    DatasetEntry("cifar10", "CIFAR-10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010),
                 4, True, "cifar", "CIFAR10", _TRAIN_TEST, "cifar-10-batches-py",
                 (("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                  ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                  ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                  ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                  ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
                  ("test_batch", "40351d587109b95175f43aff81a1287e"),
                  ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"))),
    DatasetEntry("cifar100", "CIFAR-100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
                 4, True, "cifar", "CIFAR100", _TRAIN_TEST, "cifar-100-python",
                 (("train", "16019d7e3df5f24257cddd939b257f8d"), ("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),
                  ("meta", "7973b15100ade9c7d40fb424638fde48"))),
    DatasetEntry("svhn", "SVHN", 10, (3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                 4, False, "svhn", "SVHN", _SPLIT, "",
                 (("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
                  ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")), 73257, 26032),
    _mnist_like("mnist", "MNIST", "MNIST", ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                            "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
                0.1307, 0.3081),
    _mnist_like("fashionmnist", "Fashion-MNIST", "FashionMNIST",
                ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                 "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"), 0.2860, 0.3530),
    _mnist_like("kmnist", "KMNIST", "KMNIST", ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
                                               "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
                0.1918, 0.3483),
    DatasetEntry("stl10", "STL-10", 10, (3, 96, 96), (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713),
                 12, True, "stl10", "STL10", _SPLIT, "stl10_binary",
                 (("train_X.bin", "918c2871b30a85fa023e0c44e0bee87f"),
                  ("train_y.bin", "5a34089d4802c674881badbb80307741"),
                  ("test_X.bin", "7f263ba9f9e0b06b93213547f721ac82"),
                  ("test_y.bin", "36f9794fa4beb8a2c72628de14fa638e")),
                 5000, 8000),
    DatasetEntry("imagefolder", "image folder", 0, (3, 32, 32), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                 4, True, "imagefolder", "ImageFolder", default_size=32),
)
REGISTRY: dict[str, DatasetEntry] = {e.name: e for e in _ENTRIES}
DATASET_NAMES: tuple[str, ...] = tuple(REGISTRY)
