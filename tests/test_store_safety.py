"""A store that cannot be emptied by accident and can be rebuilt from its files (real tiny runs).

Every test works on a copy of one real finished tiny store (TINY_RECIPE run to the end), through
the real CLI entry point: damaged db files, deleted or altered artifacts, gc, check, repair,
export and import.
"""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from conftest import call, prepare_tiny_store

from tprm.engine.artifacts import ArtifactError
from tprm.engine.store import BACKUP_KEEP, DB_NAME, Store, StoreError, StoreWarning

# The damage shapes of issue 14 plus our own: (name, db text).
ISSUE_SHAPES = [
    ("jobs lost their records", '{"jobs": {"1": {}}}'),
    ("a job without kind", '{"jobs": {"1": {"hash": "abc", "state": "done"}}}'),
    ("a run without run_id, pid 'x'", '{"runs": {"1": {"state": "running", "pid": "x"}}}'),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return prepare_tiny_store(tmp_path_factory.mktemp("finished"))


@pytest.fixture
def work(finished, tmp_path, monkeypatch) -> Path:
    """A private copy of the finished store's folder (cwd = its parent, so `tiny` resolves)."""
    dst = tmp_path / "w"
    shutil.copytree(finished.parent, dst, ignore=shutil.ignore_patterns("*.lock"))
    monkeypatch.chdir(dst)
    return dst / "store"



def cells(capsys, monkeypatch, store: Path) -> list[dict]:
    code, out, err = call(capsys, monkeypatch, "results", "tiny", "--json", "--store", str(store))
    assert code == 0, err
    return json.loads(out)


def dense_hash(store: Path) -> str:
    return next(h for h, j in Store(store).get_jobs().items() if j["kind"] == "dense")


# -- metadata and checksums ---------------------------------------------------------------------
def test_every_finished_job_has_metadata_with_sizes_and_checksums(work):
    store = Store(work)
    jobs = store.get_jobs()
    assert jobs and all(j["state"] == "done" for j in jobs.values())
    for h, job in jobs.items():
        meta = store.artifacts.read_meta(h)
        assert meta["hash"] == h and meta["kind"] == job["kind"] and meta["state"] == "done"
        assert meta["recipe_names"] == ["tiny"] and meta["recipes"] == job["recipes"]
        assert meta["result"] == store.results([h])[h] and meta["provenance"]["tprm"]
        on_disk = {p.name.split(".")[1] for p in store.artifacts.files_of(h)}
        assert set(meta["files"]) == set(job["artifacts"]) == on_disk
        for name, rec in meta["files"].items():
            assert rec["size"] == store.artifacts.path(h, name).stat().st_size
    assert store.check()["ok"]


def test_a_changed_artifact_fails_its_checksum_when_read(work):
    store = Store(work)
    h = dense_hash(work)
    path = store.artifacts.path(h, "checkpoints")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="fails its checksum"):
        store.artifacts.load(h, "checkpoints")
    report = store.check()
    assert not report["ok"] and [r["job"] for r in report["artifacts"]["checksum_mismatch"]] == [h]
    assert store.check(deep=False)["artifacts"]["checksum_mismatch"]  # mtime changed -> hashed


# -- issue 15 item 6: a lost artifact does not go unnoticed --------------------------------------
def test_deleted_dense_checkpoint_is_recomputed_by_the_next_run_with_the_same_results(
        work, capsys, monkeypatch):
    before = cells(capsys, monkeypatch, work)
    h = dense_hash(work)
    store = Store(work)
    path = store.artifacts.path(h, "checkpoints")
    old_sha = store.get_jobs([h])[h]["artifacts"]["checkpoints"]["sha256"]
    path.unlink()
    code, out, err = call(capsys, monkeypatch, "store", "check", "--store", str(work))
    assert code == 1 and f"missing: dense seed=0: {path}" in out
    code, out, err = call(capsys, monkeypatch, "run", "tiny", "--store", str(work))
    assert code == 0, err
    assert "re-queued 1 finished job(s)" in err and "executed 1)" in out + err
    assert path.is_file()
    assert Store(work).get_jobs([h])[h]["artifacts"]["checkpoints"]["sha256"] == old_sha
    assert cells(capsys, monkeypatch, work) == before
    code, out, err = call(capsys, monkeypatch, "run", "tiny", "--store", str(work))
    assert code == 0 and "executed 0)" in out + err and "re-queued" not in err


def test_export_fails_loudly_on_a_missing_file_and_import_restores_it(work, tmp_path, capsys,
                                                                         monkeypatch):
    bundle = tmp_path / "tiny.tar.gz"
    code, _, err = call(capsys, monkeypatch, "export", "tiny", str(bundle), "--store", str(work))
    assert code == 0, err
    h = dense_hash(work)
    store = Store(work)
    path = store.artifacts.path(h, "checkpoints")
    good = path.read_bytes()
    path.unlink()
    broken = tmp_path / "broken.tar.gz"
    code, out, err = call(capsys, monkeypatch, "export", "tiny", str(broken), "--store", str(work))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{path} missing" in err and "tprm run tiny" in err and not broken.exists()
    code, out, err = call(capsys, monkeypatch, "import", str(bundle), "--store", str(work))
    assert code == 0 and "'artifacts_restored': 1" in out, out + err
    assert path.read_bytes() == good and Store(work).check()["ok"]


# -- damaged db: readers skip, writers refuse, gc refuses ----------------------------------------
@pytest.mark.parametrize("name,text", ISSUE_SHAPES)
def test_gc_refuses_on_a_damaged_db_and_commands_do_not_traceback(work, capsys, monkeypatch,
                                                                    name, text):
    db = work / DB_NAME
    db.write_text(text)
    files = sorted(work.rglob("*.pt"))
    for args in (["store", "gc", "--dry-run"], ["store", "gc"], ["store", "gc", "--force"]):
        code, out, err = call(capsys, monkeypatch, *args, "--store", str(work))
        assert code == 2 and "refusing to collect anything" in err, (args, out, err)
        assert "tprm store check" in err and "tprm store repair" in err
    code, out, err = call(capsys, monkeypatch, "status", "--store", str(work))
    assert code == 0 and "Traceback" not in err and "malformed record" in err
    code, out, err = call(capsys, monkeypatch, "run", "tiny", "--store", str(work))
    assert code == 2 and "nothing was changed" in err and "tprm store repair" in err
    assert db.read_text() == text and sorted(work.rglob("*.pt")) == files


def test_status_skips_a_malformed_run_record_with_a_warning(work, capsys, monkeypatch):
    db = work / DB_NAME
    data = json.loads(db.read_text())
    data["runs"]["99"] = {"state": "running", "pid": "x"}
    db.write_text(json.dumps(data))
    code, out, err = call(capsys, monkeypatch, "status", "--store", str(work))
    assert code == 0 and "tiny: 17 jobs (done 17)" in out
    assert err.startswith("warning: ") and "runs[99]: no run_id" in err and err.count("\n") == 1
    with pytest.warns(StoreWarning, match="runs\\[99\\]"):
        assert len(Store(work).get_runs()) == len(data["runs"]) - 1


def test_gc_refuses_a_large_share_without_force_and_moves_to_trash(work, capsys, monkeypatch):
    db = work / DB_NAME
    data = json.loads(db.read_text())
    data["jobs"] = {}  # a valid but empty index: every artifact looks orphaned
    db.write_text(json.dumps(data))
    n = len(list(work.rglob("*.pt")))
    code, out, err = call(capsys, monkeypatch, "store", "gc", "--store", str(work))
    assert code == 2 and f"refusing to collect {n} of {n} artifact files (more than 10%)" in err
    assert len(list((work / "artifacts").rglob("*.pt"))) == n
    code, out, err = call(capsys, monkeypatch, "store", "gc", "--force", "--store", str(work))
    assert code == 0 and "moved" in out
    assert not list((work / "artifacts").rglob("*.pt"))
    assert len(list((work / "trash").rglob("*.pt"))) == n  # recoverable until purged
    code, out, err = call(capsys, monkeypatch, "store", "gc", "--purge", "--store", str(work))
    assert code == 0 and "purged" in out and not (work / "trash").exists()


# -- backups and repair -------------------------------------------------------------------------
def test_backups_are_rotated_valid_and_small(work):
    store = Store(work)
    for i in range(BACKUP_KEEP + 3):
        store.put_recipe(f"r{i}", f"h{i}", None, "name: x\n")
        store.backup(store.db_path.read_bytes(), force=True)
    backups = store.backups()
    assert len(backups) == BACKUP_KEEP
    newest = json.loads(gzip.decompress(backups[0].read_bytes()))
    assert newest == json.loads(store.db_path.read_text())
    assert backups[0].stat().st_size < store.db_path.stat().st_size / 3


def test_repair_after_the_db_is_deleted_restores_every_cell(work, capsys, monkeypatch):
    before = cells(capsys, monkeypatch, work)
    (work / DB_NAME).unlink()
    shutil.rmtree(work / "backups")  # the files alone must be enough
    code, out, err = call(capsys, monkeypatch, "store", "check", "--store", str(work))
    assert code == 1 and "can rebuild 17 finished job(s)" in out
    code, out, err = call(capsys, monkeypatch, "store", "repair", "--store", str(work))
    assert code == 0 and "17 job(s) in the index now (db was missing; base: artifact metadata" in out
    assert "17 job(s) and 17 result(s) restored from artifact metadata" in out
    assert cells(capsys, monkeypatch, work) == before
    code, out, err = call(capsys, monkeypatch, "store", "check", "--json", "--store", str(work))
    assert code == 0 and json.loads(out)["ok"]


def test_repair_of_garbage_keeps_a_copy_and_prefers_the_backup(work, capsys, monkeypatch):
    db = work / DB_NAME
    good = json.loads(db.read_text())
    db.write_text('{"jobs": {"1": {"hash": ')
    code, out, err = call(capsys, monkeypatch, "store", "repair", "--store", str(work))
    assert code == 0 and "base: backup" in out and "kept the damaged db as" in out
    assert list(work.glob(f"{DB_NAME}.damaged-*"))[0].read_text() == '{"jobs": {"1": {"hash": '
    repaired = Store(work)
    assert {j["hash"] for j in good["jobs"].values()} == set(repaired.get_jobs())
    assert len(repaired.get_runs()) == len(good["runs"])


def test_repair_requeues_jobs_whose_files_are_gone(work, capsys, monkeypatch):
    h = dense_hash(work)
    Store(work).artifacts.path(h, "curves").unlink()
    code, out, err = call(capsys, monkeypatch, "store", "repair", "--store", str(work))
    assert code == 0 and "re-queued 1 job(s)" in out and "dense seed=0" in out
    job = Store(work).get_jobs([h])[h]
    assert job["state"] == "queued" and "curves missing" in job["error"]


def test_writers_refuse_to_store_a_malformed_record(work):
    store = Store(work)
    before = store.db_path.read_bytes()
    with pytest.raises(StoreError, match="refusing to write a malformed record"):
        with store.transaction() as db:
            db.table("runs").insert({"state": "running"})
    assert store.db_path.read_bytes() == before


# -- property: random damage to a real store file ----------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

json_values = (st.none() | st.booleans() | st.integers(-3, 10**12) | st.floats(allow_nan=False)
               | st.text(max_size=8) | st.lists(st.integers(-3, 3) | st.text(max_size=3), max_size=3)
               | st.dictionaries(st.text(max_size=6), st.integers() | st.none(), max_size=3))


@st.composite
def damage(draw):
    """A function text -> damaged text, and a description of it."""
    kind = draw(st.sampled_from(["truncate", "bytes", "drop_field", "set_field", "drop_record",
                                 "replace_record", "replace_table", "drop_table", "duplicate"]))
    seed = draw(st.integers(0, 10**6))
    value = draw(json_values)

    def apply(text: str) -> str:
        import random

        rnd = random.Random(seed)
        if kind == "truncate":
            return text[:rnd.randrange(len(text))]
        if kind == "bytes":
            i = rnd.randrange(len(text))
            return text[:i] + "".join(rnd.choice('{}[]":,x0 ') for _ in range(rnd.randint(1, 4))) \
                + text[i + 4:]
        data = json.loads(text)
        table = rnd.choice(sorted(data))
        records = data[table]
        if kind == "drop_table":
            del data[table]
        elif kind == "replace_table":
            data[table] = value
        elif records:
            rid = rnd.choice(sorted(records))
            rec = records[rid]
            if kind == "drop_record":
                del records[rid]
            elif kind == "replace_record":
                records[rid] = value
            elif kind == "duplicate":
                records[str(max(int(k) for k in records) + 1)] = rec
            elif rec:
                field = rnd.choice(sorted(rec))
                if kind == "drop_field":
                    del rec[field]
                else:
                    rec[field] = value
        return json.dumps(data)
    return kind, seed, value, apply


READ_COMMANDS = [["status"], ["results", "tiny", "--json"], ["store", "check", "--json"],
                 ["store", "gc"], ["run", "tiny", "--dry-run"], ["cancel", "tiny"]]


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(dmg=damage())
def test_random_damage_no_traceback_no_write_and_repair_recovers(finished, tmp_path, capsys,
                                                                    monkeypatch, dmg):
    import tempfile

    from tprm.engine.records import table_problems

    kind, seed, value, apply = dmg
    original = Store(finished)
    want_results = original.results()
    monkeypatch.chdir(tmp_path)  # each example's folder goes away; never stay inside it
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        work = Path(d) / "store"
        shutil.copytree(finished, work, ignore=shutil.ignore_patterns("*.lock"))
        recipe = work / "recipes" / "tiny.yaml"
        db = work / DB_NAME
        text = apply(db.read_text())
        db.write_text(text)
        try:
            parsed = json.loads(text)
            valid = isinstance(parsed, dict) and all(isinstance(t, dict) for t in parsed.values()) \
                and not table_problems(parsed)
        except ValueError:
            parsed, valid = None, False
        newer = valid and any(isinstance(r, dict) and isinstance(r.get("schema_version"), int)
                              and r["schema_version"] > 2 for r in parsed.get("meta", {}).values())
        for args in READ_COMMANDS:
            code, out, err = call(capsys, monkeypatch, *[a.replace("tiny", str(recipe)) for a in args],
                                  "--store", str(work))
            assert "Traceback" not in out + err and code in (0, 1, 2), (kind, args, out, err)
            if code == 2:
                assert err.strip().count("\n") <= 1, (args, err)  # one line (maybe after a warning)
            if not valid:
                assert db.read_text() == text, (kind, args)  # a damaged file is never written
        code, out, err = call(capsys, monkeypatch, "store", "repair", "--store", str(work))
        if newer:
            assert code == 2 and "upgrade tprm" in err
            return
        assert code == 0, (kind, out, err)
        repaired = Store(work)
        jobs = repaired.get_jobs()
        assert all(jobs[h]["state"] == "done" for h in want_results), (kind, value)
        assert repaired.results(list(want_results)) == want_results, (kind, value)
