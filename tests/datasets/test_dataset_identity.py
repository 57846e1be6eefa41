"""pytorch_grad_cam.datasets.identity: a store records its source and each
item's file (size, modification time); a resumed run refuses another
source, naming both, and explains again the items whose file changed."""
import os
import shutil

import cv2
import numpy as np
import pytest
import torch
from dataset_helpers import LAYER, SMALL, TinyNet, photo, reference, write_photos

from pytorch_grad_cam.cli.models import LoadedModel
from pytorch_grad_cam.datasets import StoreRefused, explain_dataset, open_results
from pytorch_grad_cam.datasets.cli import PROG, main
from pytorch_grad_cam.datasets.identity import drop_items
from pytorch_grad_cam.datasets.ownership import read_marker
from pytorch_grad_cam.datasets.store import Store, read_shard

OPTIONS = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "progress": False, "shard_size": 2}


def _identity(path):
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def _rows(out):
    frame = open_results(out).frame
    return {row.id: (row.file_size, row.file_mtime_ns) for row in frame.itertuples()}


def test_each_row_records_its_file(tmp_path):
    paths = write_photos(tmp_path / "photos", 3)
    explain_dataset(tmp_path / "photos", TinyNet(), "gradcam", out=tmp_path / "out", **OPTIONS)
    assert _rows(tmp_path / "out") == {p.name: _identity(p) for p in paths}
    assert read_marker(tmp_path / "out")["source"] == {
        "kind": "folder", "folder": str((tmp_path / "photos").resolve())}


def test_another_folder_with_the_same_names_is_refused_naming_both(tmp_path, capsys):
    write_photos(tmp_path / "a", 2)
    write_photos(tmp_path / "b", 2, sizes=[(50, 50)])  # the same names, other pictures
    out = tmp_path / "out"
    explain_dataset(tmp_path / "a", TinyNet(), "gradcam", out=out, **OPTIONS)
    shards = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    expected = (f"out {str(out)!r} holds results of another source (folder "
                f"{str((tmp_path / 'a').resolve())!r} in the store, folder "
                f"{str((tmp_path / 'b').resolve())!r} now); nothing was changed: resume with "
                "the same source, or choose another folder, or pass {option} to replace its "
                "results")
    with pytest.raises(StoreRefused) as raised:
        explain_dataset(tmp_path / "b", TinyNet(), "gradcam", out=out, **OPTIONS)
    assert str(raised.value) == expected.format(option="overwrite=True")
    status = main([str(tmp_path / "b"), "--out", str(out), "--target-layer", LAYER,
                   "--input-size", "32", "--no-progress", "--workers", "0"],
                  load=lambda args: LoadedModel(TinyNet(), "tiny"))
    assert status == 2
    assert capsys.readouterr().err == f"{PROG}: error: {expected.format(option='--overwrite')}\n"
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == shards
    # overwrite starts the store afresh from the new source
    summary = explain_dataset(tmp_path / "b", TinyNet(), "gradcam", out=out, overwrite=True,
                              **OPTIONS)
    assert (summary.processed, summary.skipped, summary.changed) == (2, 0, 0)
    assert read_marker(out)["source"]["folder"] == str((tmp_path / "b").resolve())


def test_a_changed_file_is_explained_again(tmp_path):
    folder = tmp_path / "photos"
    paths = write_photos(folder, 5)
    out = tmp_path / "out"
    model = TinyNet()
    explain_dataset(folder, model, "gradcam", out=out, **OPTIONS)
    # img_001: another picture of another size; img_004: the same bytes, touched
    changed = photo(99, 60, 30)
    cv2.imwrite(str(paths[1]), cv2.cvtColor(changed, cv2.COLOR_RGB2BGR))
    assert _identity(paths[1])[0] != _rows(out)["img_001.png"][0]
    stat = os.stat(paths[4])
    os.utime(paths[4], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    summary = explain_dataset(folder, model, "gradcam", out=out, **OPTIONS)
    assert (summary.processed, summary.skipped, summary.changed) == (2, 3, 2)
    assert "this run: 2 explained (2 again: file(s) changed since), 3 already done" in str(summary)
    results = open_results(out)
    frame = results.frame
    assert frame["id"].tolist() == [f"img_{i:03d}.png" for i in range(5)]  # once each
    assert _rows(out) == {p.name: _identity(p) for p in paths}
    row = results.find("img_001.png")
    assert (frame["height"][row], frame["width"][row]) == (60, 30)  # the new picture's
    cam, target, _, _ = reference(model, paths[1])
    assert frame["target"][row] == target
    np.testing.assert_allclose(results.map(row), cam, atol=1e-3)
    assert results.complete and results.index["items"] == 5
    # nothing changed: nothing to do
    again = explain_dataset(folder, model, "gradcam", out=out, **OPTIONS)
    assert (again.processed, again.skipped, again.changed) == (0, 5, 0)


def test_a_file_that_was_missing_is_explained_when_it_is_there(tmp_path):
    folder = tmp_path / "photos"
    paths = write_photos(folder, 2)
    out = tmp_path / "out"
    source = [str(p) for p in paths]
    moved = tmp_path / "aside.png"
    shutil.move(paths[1], moved)
    explain_dataset(source, TinyNet(), "gradcam", out=out, **OPTIONS)
    frame = open_results(out).frame
    assert frame["status"].tolist() == ["ok", "unreadable"]
    assert (frame["file_size"][1], frame["file_mtime_ns"][1]) == (-1, -1)
    shutil.move(moved, paths[1])
    summary = explain_dataset(source, TinyNet(), "gradcam", out=out, **OPTIONS)
    assert (summary.processed, summary.changed) == (1, 1)
    assert open_results(out).frame["status"].tolist() == ["ok", "ok"]


def test_relative_paths_from_another_folder_are_another_source(tmp_path, monkeypatch):
    for name in ("one", "two"):
        write_photos(tmp_path / name, 1)
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path / "one")
    explain_dataset(["img_000.png"], TinyNet(), "gradcam", out=out, **OPTIONS)
    monkeypatch.chdir(tmp_path / "two")
    with pytest.raises(StoreRefused, match=r"another source \(a list of paths relative to "
                                           r"'.*one' in the store, a list of paths relative to "
                                           r"'.*two' now\)"):
        explain_dataset(["img_000.png"], TinyNet(), "gradcam", out=out, **OPTIONS)
    # absolute paths are their own ids: they do not collide, and may join the store
    absolute = str(tmp_path / "two" / "img_000.png")
    assert explain_dataset([absolute], TinyNet(), "gradcam", out=out, **OPTIONS).processed == 1


class Pictures(torch.utils.data.Dataset):
    def __init__(self, count):
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return photo(index)


class OtherPictures(Pictures):
    pass


def test_another_dataset_class_is_another_source(tmp_path):
    out = tmp_path / "out"
    explain_dataset(Pictures(2), TinyNet(), "gradcam", out=out, **OPTIONS)
    assert set(_rows(out).values()) == {(-1, -1)}  # no files: nothing to check
    assert explain_dataset(Pictures(3), TinyNet(), "gradcam", out=out, **OPTIONS).processed == 1
    with pytest.raises(StoreRefused, match=r"another source \(Dataset test_dataset_identity."
                                           r"Pictures in the store, Dataset "
                                           r"test_dataset_identity.OtherPictures now\)"):
        explain_dataset(OtherPictures(3), TinyNet(), "gradcam", out=out, **OPTIONS)


def test_dropping_items_rewrites_their_shards_with_the_maps_renumbered(tmp_path):
    write_photos(tmp_path / "photos", 5)
    (tmp_path / "photos" / "img_001.png").write_bytes(b"")  # a row without a map
    out = tmp_path / "out"
    explain_dataset(tmp_path / "photos", TinyNet(), ["gradcam", "gradcam++"], out=out,
                    **OPTIONS)
    before = open_results(out)
    expected = {m: before.map(before.find("img_004.png", m)) for m in ("gradcam", "gradcam++")}
    store = Store(out)
    first, second, third = store.committed_shards()
    assert drop_items(store, ["img_000.png", "img_002.png", "img_003.png"]) == 6
    assert not second.exists()  # img_002 and img_003: nothing left
    assert read_shard(first)["map_row"].tolist() == [-1, -1]  # img_001, unreadable
    assert read_shard(third)["map_row"].tolist() == [0, 1]
    after = open_results(out)
    assert after.frame["id"].unique().tolist() == ["img_001.png", "img_004.png"]
    for method, cam in expected.items():
        np.testing.assert_array_equal(after.map(after.find("img_004.png", method)), cam)
