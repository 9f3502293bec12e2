"""Artifact files: layout, exact round trips, atomic writes, and clear errors for bad files."""
from __future__ import annotations

import io

import pytest
import torch

from tprm.engine.artifacts import FORMAT_VERSION, ArtifactError, Artifacts, parse_file_name

H = "ab12cd34" * 8  # a sha256-like job hash


class NotPlain:
    """A class torch.load(weights_only=True) must refuse to rebuild."""

    def __init__(self):
        self.x = 1


@pytest.fixture
def arts(tmp_path) -> Artifacts:
    return Artifacts(tmp_path)


def test_round_trip_is_exact_and_layout_is_sharded(arts, tmp_path):
    gen = torch.Generator().manual_seed(0)
    obj = {"state": {"conv.weight": torch.randn(4, 3, 5, generator=gen), "fc.bias": torch.zeros(10)},
           "masks": {"conv.weight": torch.rand(4, 3, 5, generator=gen) > 0.5},
           "curves": {"epoch": [1, 2, 3], "test_error": [0.5, 0.25, 0.125]},
           "diverged_at": None, 8: (1, 2.5, "x"), "dtype": torch.float64}
    path = arts.save(H, "state", obj)
    assert path == tmp_path / "artifacts" / H[:2] / f"{H}.state.pt"
    assert arts.path(H, "state") == path and arts.exists(H, "state") and not arts.exists(H, "mask")
    back = arts.load(H, "state")
    assert set(back) == set(obj)
    for k, t in obj["state"].items():
        assert back["state"][k].dtype == t.dtype and torch.equal(back["state"][k], t)
    assert back["masks"]["conv.weight"].dtype == torch.bool
    assert torch.equal(back["masks"]["conv.weight"], obj["masks"]["conv.weight"])
    assert back["curves"] == obj["curves"] and back["diverged_at"] is None
    assert back[8] == (1, 2.5, "x") and back["dtype"] == torch.float64
    # only the finished file is there: the temp file was renamed, not left behind
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert arts.all_files() == [path] and arts.temp_files() == []


def test_overwrite_replaces_whole_file(arts):
    arts.save(H, "state", {"w": torch.ones(1000)})
    arts.save(H, "state", {"w": torch.full((3,), 2.0)})
    assert torch.equal(arts.load(H, "state")["w"], torch.full((3,), 2.0))


def test_views_of_a_large_tensor_are_saved_compactly(arts):
    stacked = torch.randn(64, 256, 256)  # e.g. the stacked parameter of a fused group of 64 models
    path = arts.save(H, "state", {"w": stacked[3]})
    assert path.stat().st_size < 2 * 256 * 256 * 4  # one slice, not the 16 MiB stack
    assert torch.equal(arts.load(H, "state")["w"], stacked[3])


def test_truncated_corrupt_and_missing_files_raise_one_line_errors(arts):
    path = arts.save(H, "state", {"w": torch.randn(2000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError) as err:
        arts.load(H, "state")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(ArtifactError, match="corrupt"):
        arts.load(H, "state")
    with pytest.raises(ArtifactError, match="missing") as err:
        arts.load(H, "mask")
    assert str(arts.path(H, "mask")) in str(err.value)


def test_format_header_is_checked(arts):
    path = arts.path(H, "state")
    path.parent.mkdir(parents=True)
    torch.save({"format": FORMAT_VERSION + 1, "payload": 1}, path)
    with pytest.raises(ArtifactError, match=f"format {FORMAT_VERSION + 1}"):
        arts.load(H, "state")
    torch.save(torch.zeros(3), path)  # a bare tensor written by something else
    with pytest.raises(ArtifactError, match="not a tprm artifact"):
        arts.load(H, "state")


def test_pickled_code_is_never_loaded(arts):
    path = arts.path(H, "state")
    path.parent.mkdir(parents=True)
    torch.save({"format": FORMAT_VERSION, "payload": NotPlain()}, path)
    with pytest.raises(ArtifactError, match="corrupt"):
        arts.load(H, "state")


def test_non_plain_objects_are_refused_before_writing(arts):
    with pytest.raises(ArtifactError, match=r"\['model'\] is a Linear"):
        arts.save(H, "state", {"model": torch.nn.Linear(2, 2)})
    with pytest.raises(ArtifactError, match="dict key"):
        arts.save(H, "state", {(1, 2): torch.zeros(1)})
    assert not arts.exists(H, "state") and arts.all_files() == []


@pytest.mark.parametrize("job_hash,name", [("../x", "state"), ("a/b", "state"), ("", "state"),
                                           (H, "a/b"), (H, ".hidden"), (H, "x.tmp"), (H, "")])
def test_bad_names_are_rejected(arts, job_hash, name):
    with pytest.raises(ArtifactError):
        arts.path(job_hash, name)


def test_files_of_remove_log_path_and_put_file(arts, tmp_path):
    other = "ab" + "0" * 62  # same shard, different job
    arts.save(H, "state", [1])
    arts.save(H, "mask", [2])
    arts.save(other, "state", [3])
    assert [parse_file_name(p) for p in arts.files_of(H)] == [(H, "mask"), (H, "state")]
    assert len(arts.all_files()) == 3
    assert arts.remove(H, "mask") == [arts.path(H, "mask")]
    assert arts.remove(H) == [arts.path(H, "state")]
    assert arts.files_of(H) == [] and arts.load(other, "state") == [3]
    log = arts.log_path(H)
    assert log == tmp_path / "logs" / f"{H}.log" and log.parent.is_dir() and not log.exists()
    buf = io.BytesIO(arts.path(other, "state").read_bytes())
    arts.put_file(H, "copy", buf)
    assert arts.load(H, "copy") == [3]


def test_manifest_metadata_and_checksum_on_load(arts):
    from tprm.engine.artifacts import file_problem

    path = arts.save(H, "state", {"w": torch.arange(4.0)})
    files = arts.manifest(H)
    assert set(files) == {"state"} and files["state"]["size"] == path.stat().st_size
    assert len(files["state"]["sha256"]) == 64
    assert arts.read_meta(H) is None  # nothing recorded yet: loads are not checked
    arts.write_meta(H, {"hash": H, "kind": "dense", "files": files})
    assert arts.read_meta(H)["files"] == files and arts.all_metas() == [arts.meta_path(H)]
    assert file_problem(path, files["state"]) is None
    torch.save({"format": FORMAT_VERSION, "payload": {"w": torch.zeros(4)}}, path)  # replaced
    assert file_problem(path, files["state"], deep=False) is not None  # mtime moved: hashed
    with pytest.raises(ArtifactError, match="fails its checksum"):
        arts.load(H, "state")
    path.unlink()
    assert file_problem(path, files["state"]) == "missing"
    arts.meta_path(H).write_text("{not json")
    assert arts.read_meta(H) is None  # a bad metadata file is ignored, never raised
