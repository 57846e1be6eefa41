"""pytorch_grad_cam.datasets.store: atomic writes, shards round trip, the
fingerprint, the loader (pandas and maps at any size)."""
import json

import numpy as np
import pytest
import torch

import pytorch_grad_cam.datasets.atomic as atomic_module
from pytorch_grad_cam.datasets.store import (
    COLUMNS,
    Results,
    ShardWriter,
    Store,
    atomic_write,
    fingerprint,
    load_results,
    read_shard,
    resize_map,
)


def _row(item, method, status="ok", map_value=None, **extra):
    row = {"position": item, "id": f"item{item}", "path": f"/data/{item}.jpg", "label": -1,
           "method": method, "status": status, "reason": "" if status == "ok" else "bad",
           "height": 10 + item, "width": 20, "target": item % 3, "score": 1.5 * item,
           "prob": 0.1 * item, "empty_map": False,
           "map": None if map_value is None else np.full((2, 3), map_value, np.float16),
           "pred_classes": [item % 3, 1], "pred_probs": [0.5, 0.25],
           "metrics": {"Complexity": 0.01 * item}}
    row.update(extra)
    return row


CONFIG = {"methods": ["gradcam", "scorecam"], "metrics": ["Complexity"], "top_k": 2,
          "map_size": [2, 3]}


def _write(root, items, shard_size=2, rank=0):
    store = Store(root)
    store.create(CONFIG)
    writer = ShardWriter(store, rank, ["gradcam", "scorecam"], ["Complexity"], 2, (2, 3),
                         shard_size)
    for item in items:
        status = "unreadable" if item == 3 else "ok"
        value = None if status != "ok" else item / 10
        writer.add([_row(item, "gradcam", status, value), _row(item, "scorecam", status, value)])
    writer.flush()
    return store, writer


def test_atomic_write_leaves_all_or_nothing(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write(target, lambda handle: handle.write(b"first"))
    assert target.read_bytes() == b"first"

    def failing(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, failing)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]  # no temporary left


def test_atomic_write_renames_only_after_the_data_is_on_disk(tmp_path, monkeypatch):
    seen = []

    def check(temporary, final):
        seen.append((temporary.name, temporary.read_bytes(), final.exists()))

    monkeypatch.setattr(atomic_module, "_pre_commit", check)
    atomic_write(tmp_path / "x.npz", lambda handle: handle.write(b"data"))
    (name, data, existed), = seen
    assert name.startswith(".x.npz.tmp-") and data == b"data" and not existed


def test_shards_round_trip_through_pandas(tmp_path):
    store, writer = _write(tmp_path / "s", range(5), shard_size=2)
    assert [p.name for p in store.committed_shards()] == [p.name for p in writer.written]
    assert len(writer.written) == 3  # 2 + 2 + 1 items
    data = read_shard(writer.written[0])
    assert set(COLUMNS) <= set(data) and data["maps"].dtype == np.float16
    assert data["maps"].shape == (4, 2, 3) and data["pred_classes"].shape == (4, 2)
    assert store.done_ids() == {f"item{i}" for i in range(5)}
    frame = load_results(tmp_path / "s")
    assert len(frame) == 10
    assert list(frame["method"][:4]) == ["gradcam", "scorecam"] * 2
    assert list(frame["id"][::2]) == [f"item{i}" for i in range(5)]
    assert frame["score"][4] == pytest.approx(1.5 * 2)
    assert frame["top1_class"][4] == 2 and frame["top2_prob"][4] == pytest.approx(0.25)
    assert frame["Complexity"][8] == pytest.approx(0.04)
    assert list(frame["status"][6:8]) == ["unreadable"] * 2 and list(frame["map_row"][6:8]) == [-1, -1]
    assert frame.attrs["store"] == str(tmp_path / "s")
    results = Results(tmp_path / "s")
    np.testing.assert_allclose(results.map(2), np.full((2, 3), 0.1, np.float32), atol=1e-3)
    assert results.map(2, size=(4, 6)).shape == (4, 6)
    with pytest.raises(ValueError, match=r"row 6 \('item3', gradcam\) has no map"):
        results.map(6)
    with pytest.raises(IndexError):
        results.map(10)
    assert results.find("item4", "scorecam") == 9
    assert not results.complete  # no index.json


def test_resize_map_is_bilinear_and_area(tmp_path):
    cam = np.arange(12, dtype=np.float16).reshape(3, 4) / 12
    big = resize_map(cam, (6, 8))
    expected = torch.nn.functional.interpolate(torch.tensor(cam, dtype=torch.float32)[None, None],
                                               size=(6, 8), mode="bilinear",
                                               align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(big, expected, atol=1e-6)
    small = resize_map(np.ones((4, 4)) * np.array([0, 0, 1, 1]), (2, 2))
    np.testing.assert_allclose(small, [[0, 1], [0, 1]])
    with pytest.raises(ValueError, match="size must be"):
        resize_map(cam, (0, 3))


def test_temporary_and_foreign_files_are_not_results(tmp_path):
    store, writer = _write(tmp_path / "s", range(2))
    killed = f".part-r0000-{writer.token}-000009.npz.tmp-1-ab"  # a shard of this store's writer
    (store.shard_dir / killed).write_bytes(b"half a shard")
    (store.shard_dir / ".mine.tmp-1").write_text("a hidden file of yours")
    (store.shard_dir / "README").write_text("mine")
    assert len(load_results(tmp_path / "s")) == 4
    store.create(CONFIG)  # a new run deletes the temporary files of the store's killed writes
    assert sorted(p.name for p in store.shard_dir.iterdir() if p.name.startswith(".")) == [
        ".mine.tmp-1"]
    assert (store.shard_dir / "README").exists()


def test_a_corrupt_committed_shard_is_named(tmp_path):
    store, writer = _write(tmp_path / "s", range(2))
    writer.written[0].write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot be read.*delete it and run again"):
        load_results(tmp_path / "s")


def test_the_fingerprint_guards_the_store(tmp_path):
    store = Store(tmp_path / "s")
    assert store.check_config(CONFIG) is False  # nothing there yet
    store.create(CONFIG)
    assert store.check_config(dict(CONFIG)) is True
    other = dict(CONFIG, methods=["gradcam"], top_k=3)
    with pytest.raises(ValueError, match=r"another configuration \(methods: \[\"gradcam\", "
                                         r"\"scorecam\"\] in the store, \[\"gradcam\"\] now; "
                                         r"top_k: 2 in the store, 3 now\)"):
        store.check_config(other)
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    assert saved["fingerprint"] == fingerprint(CONFIG) and saved["config"] == CONFIG
    assert fingerprint(CONFIG) == fingerprint(dict(reversed(list(CONFIG.items()))))
    (tmp_path / "s" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a results store"):
        store.check_config(CONFIG)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        Results(tmp_path / "nowhere")


def test_overwrite_clears_only_the_stores_files(tmp_path):
    store, _ = _write(tmp_path / "s", range(3))
    (tmp_path / "s" / "notes.txt").write_text("keep me")
    store.clear()
    assert not store.committed_shards() and not store.config_path.exists()
    assert (tmp_path / "s" / "notes.txt").read_text() == "keep me"
