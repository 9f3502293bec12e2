"""The authors'-style baseline of benchmarks/paper_speed.py: what the paper's scripts do, one model at a time.

A torchvision CIFAR10 dataset with PIL transforms (random crop 32/pad 4, flip, ToTensor, Normalize),
a DataLoader with worker processes, torch.optim.SGD (lr 0.1, momentum 0.9, wd 1e-4), fp32, eager;
LMC point by point with a size-weighted BatchNorm update (update_bn) through DataLoaders.

Why a module of its own: its dataset class must live at module level, so that DataLoader workers
started with spawn or forkserver (Python 3.14's Linux default) can unpickle it (issue 24).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torchvision import datasets, transforms


class FakeOkCifar10(datasets.CIFAR10):
    """CIFAR10 over files without the official checksums (the benchmark's fake data)."""

    def _check_integrity(self) -> bool:
        return True

    def _load_meta(self) -> None:
        self.classes = [f"c{i}" for i in range(10)]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


def loaders(root, data, batch: int, workers: int, augment: bool, mp_context: str | None = None,
            train_images: int | None = None):
    """Train and test DataLoaders as the authors build them (tprm's normalisation statistics);
    ``train_images``: the first that many training images only."""
    plain = [transforms.ToTensor(), transforms.Normalize(data.mean, data.std)]
    aug = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] if augment else []
    train_set = FakeOkCifar10(str(root), train=True, transform=transforms.Compose(aug + plain))
    if train_images is not None and train_images < len(train_set):
        train_set = torch.utils.data.Subset(train_set, range(train_images))
    test_set = FakeOkCifar10(str(root), train=False, transform=transforms.Compose(plain))
    kw = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=False,
              multiprocessing_context=mp_context if workers > 0 else None)
    return (torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=augment, **kw),
            torch.utils.data.DataLoader(test_set, batch_size=256 if augment else batch, **kw))


def baseline_epoch(model, train_loader, test_loader, device: str, masks=None, steps: int | None = None) -> None:
    """One epoch as the authors' train loop (+ mask re-applied after each step) and a test pass
    (``steps``: only the first steps of the epoch)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    params = dict(model.named_parameters())
    model.train()
    for i, (x, y) in enumerate(train_loader):
        if steps is not None and i == steps:
            break
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if masks:
            with torch.no_grad():
                for name, m in masks.items():
                    params[name].mul_(m)
    baseline_eval(model, test_loader, device)


def baseline_eval(model, loader, device: str) -> tuple[float, float]:
    """Test loss and error of ``model`` over ``loader``."""
    model.eval()
    loss = wrong = n = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            wrong += int((out.argmax(1) != y).sum())
            n += len(y)
    return loss / n, wrong / n


def _interpolated(a, b, t: float, bn_loader, device: str):
    """The model at ``(1 - t) a + t b`` with its BatchNorm statistics recomputed (update_bn)."""
    model = copy.deepcopy(a)
    with torch.no_grad():
        for p, pa, pb in zip(model.parameters(), a.parameters(), b.parameters()):
            p.copy_((1 - t) * pa + t * pb)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
    model.train()
    seen = 0
    with torch.no_grad():
        for x, _ in bn_loader:
            for m in bns:
                m.momentum = len(x) / (seen + len(x))
            model(x.to(device))
            seen += len(x)
    return model


def baseline_lmc_cka(a, b, bn_loader, eval_train, eval_test, device: str, points: int = 11) -> list[float]:
    """Point-by-point LMC (update_bn with momentum b/(n+b)) + CKA of softmax outputs, authors' style."""
    errors = []
    for i in range(points):
        model = _interpolated(a, b, i / (points - 1), bn_loader, device)
        errors.append(baseline_eval(model, eval_train, device)[1])
        baseline_eval(model, eval_test, device)
    outs = []
    for model in (a, b):
        model.eval()
        with torch.no_grad():
            chunks = [torch.softmax(model(x.to(device)), 1) for x, _ in eval_train]
        outs.append(torch.cat(chunks)[:6400].double().cpu())
    x, y = (o - o.mean(0) for o in outs)
    _ = (y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm())
    return errors
