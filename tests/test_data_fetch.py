"""`tprm data list / fetch` put torchvision sets into the store's data folder (offline via --from),
and a recipe whose set is missing is planned without a download attempt."""

from __future__ import annotations

import tarfile

from conftest import run_tprm
from fakedata import write_fake_cifar10

from tprm.service import DataNotFetched, Service


def test_data_fetch_from_an_archive_then_list_and_plan(tmp_path) -> None:
    source = tmp_path / "src"
    arrays = write_fake_cifar10(source, n_train=20, n_test=10)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # the official archive's layout
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    store = tmp_path / "store"

    listed = run_tprm("data", "list", "--store", str(store))
    assert listed.returncode == 0
    assert "cifar10      not downloaded" in listed.stdout and f"{store / 'data'}" in listed.stdout

    svc = Service(store)
    try:
        svc.recipes.plan_summary("cifar10-preresnet20-epochs-quick")
        raise AssertionError("planning without the data must raise DataNotFetched")
    except DataNotFetched as exc:
        assert "CIFAR-10 not downloaded: run `tprm data fetch cifar10`" in str(exc)
    assert not (store / "data" / "cifar-10-batches-py").exists()  # nothing was downloaded

    fetched = run_tprm("data", "fetch", "cifar10", "--from", str(archive), "--store", str(store))
    assert fetched.returncode == 0, fetched.stderr
    assert "extracting data_batch_1" in fetched.stderr and "present" in fetched.stdout
    assert (store / "data" / "cifar-10-batches-py" / "test_batch").read_bytes() == \
        (source / "cifar-10-batches-py" / "test_batch").read_bytes()
    listed = run_tprm("data", "list", "--store", str(store), "--json")
    present = {row["name"]: row["present"] for row in __import__("json").loads(listed.stdout)}
    assert present == {name: name in ("mnist1d", "cifar10") for name in present} and len(present) == 9

    summary = Service(store).recipes.plan_summary("cifar10-preresnet20-epochs-quick")  # the data is there now
    assert summary["total"] > 0 and arrays["x_train"].shape[0] == 20


def test_data_fetch_bad_name_and_bad_source_exit_2(tmp_path) -> None:
    bad = run_tprm("data", "fetch", "cifar11", "--store", str(tmp_path / "s"))
    assert bad.returncode == 2 and "cifar10, cifar100, svhn" in bad.stderr and "Traceback" not in bad.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = run_tprm("data", "fetch", "cifar10", "--from", str(empty), "--store", str(tmp_path / "s"))
    assert bad.returncode == 2 and "has no data_batch_1" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "s" / "data" / "cifar-10-batches-py" / "data_batch_1").exists()
