"""Under ``torchrun --standalone --nproc_per_node=2`` (gloo, CPU) the runner
gives exactly the results of one process over a folder of 40 images: no
item missing or doubled, each rank's own shards, rank 0's index."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_helpers import LAYER, SMALL, TinyNet, environment, write_photos

from pytorch_grad_cam.datasets import TopClasses, explain_dataset, open_results
from pytorch_grad_cam.datasets.ownership import read_marker

TORCHRUN = Path(sys.executable).with_name("torchrun")
if not TORCHRUN.exists() and shutil.which("torchrun"):
    TORCHRUN = Path(shutil.which("torchrun"))

pytestmark = pytest.mark.skipif(not TORCHRUN.exists() or not torch.distributed.is_available(),
                                reason="needs torchrun and torch.distributed")

OPTIONS = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "batch_size": 3, "shard_size": 5,
               "metrics": ["Complexity"], "progress": False}

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    from dataset_helpers import LAYER, SMALL, TinyNet
    from pytorch_grad_cam.datasets import explain_dataset

    folder, out = sys.argv[1:3]
    seed = int(os.environ["RANK"]) if len(sys.argv) > 3 else 0  # "differ": other weights per rank
    summary = explain_dataset(folder, TinyNet(seed=seed), ["gradcam", "gradcam++"], out=out,
                              target_layers=[LAYER], preprocess=SMALL, workers=0, batch_size=3,
                              shard_size=5, metrics=["Complexity"], progress=False)
    rank = int(os.environ["RANK"])
    with open(f"{out}.rank{rank}.json", "w") as handle:
        json.dump({"rank": rank, "world": summary.world_size, "processed": summary.processed,
                   "changed": summary.changed, "status": summary.status_counts,
                   "initialised": torch.distributed.is_initialized()}, handle)
""")


def test_torchrun_two_processes_equal_one(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 40)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    completed = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script), str(folder),
         str(tmp_path / "two")], env=environment(), capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-3000:]
    summaries = [json.loads((tmp_path / f"two.rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [s["rank"] for s in summaries] == [0, 1]
    for s in summaries:  # every rank returns the whole store's summary; the group is left
        assert s["world"] == 2 and s["processed"] == 40 and s["status"] == {"ok": 40}
        assert s["initialised"] is False

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torchrun's processes (OMP_NUM_THREADS=1)
    try:
        explain_dataset(folder, TinyNet(), ["gradcam", "gradcam++"], out=tmp_path / "one",
                        **OPTIONS)
    finally:
        torch.set_num_threads(threads)
    two, one = open_results(tmp_path / "two"), open_results(tmp_path / "one")
    assert two.complete and one.complete
    shards = list(two.frame["shard"].astype(str).unique())
    ranks = {name.split("-")[1] for name in shards}
    assert ranks == {"r0000", "r0001"}  # each rank wrote its own shards
    per_rank = two.frame[two.frame["method"] == "gradcam"].groupby(
        two.frame["shard"].astype(str).str.split("-").str[1], observed=True).size()
    assert per_rank.to_dict() == {"r0000": 20, "r0001": 20}  # items 0, 2, 4... and 1, 3, 5...
    assert two.frame["id"].tolist() == one.frame["id"].tolist()
    assert len(two.frame) == 80 and not two.frame.duplicated(["id", "method"]).any()
    # ids, statuses, classes, scores, probabilities and the stored maps are identical; the
    # metric values, computed on float32 maps of batches made up differently, equal to rounding
    columns = [c for c in one.frame.columns if c not in ("shard", "map_row", "Complexity")]
    assert two.frame[columns].equals(one.frame[columns])
    for row in range(80):
        np.testing.assert_array_equal(two.map(row), one.map(row))
    np.testing.assert_allclose(two.frame["Complexity"], one.frame["Complexity"], atol=1e-6)
    for method in ("gradcam", "gradcam++"):
        a, b = two.index["metrics"][method]["Complexity"], one.index["metrics"][method]["Complexity"]
        assert a["count"] == b["count"] == 40
        assert a["mean"] == pytest.approx(b["mean"], abs=1e-6)
    assert two.index["items"] == 40 and len(two.index["shards"]) == 8


def test_ranks_with_different_weights_all_fail_before_any_work(tmp_path):
    folder = tmp_path / "photos"
    write_photos(folder, 4)
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    completed = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script), str(folder),
         str(tmp_path / "two"), "differ"], env=environment(), capture_output=True, text=True,
        timeout=180)
    assert completed.returncode != 0
    assert completed.stderr.count("rank 1's configuration differs from rank 0's "
                                  "(model.state_dict_blake2b") >= 2  # raised on both ranks
    assert not list((tmp_path / "two").glob("shards/*.npz"))


def test_torchrun_resumes_a_store_explaining_the_changed_files_again(tmp_path):
    folder = tmp_path / "photos"
    paths = write_photos(folder, 6)
    out = tmp_path / "store"
    explain_dataset(folder, TinyNet(), ["gradcam", "gradcam++"], out=out, **OPTIONS)
    for path in (paths[0], paths[3]):  # checked by rank 0 and rank 1: the same bytes, touched
        stat = os.stat(path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    completed = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script),
                                str(folder), str(out)], env=environment(), capture_output=True,
                               text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-3000:]
    for rank in (0, 1):
        summary = json.loads((tmp_path / f"store.rank{rank}.json").read_text())
        assert (summary["processed"], summary["changed"], summary["status"]) == (2, 2, {"ok": 6})
    results = open_results(out)
    frame = results.frame
    assert results.complete and not frame.duplicated(["id", "method"]).any() and len(frame) == 12
    for row in frame.itertuples():
        info = os.stat(folder / row.id)
        assert (row.file_size, row.file_mtime_ns) == (info.st_size, info.st_mtime_ns)
    again = frame[frame["id"].isin(["img_000.png", "img_003.png"])]
    ranks = sorted(again["shard"].astype(str).str.split("-").str[1].unique())
    assert ranks == ["r0000", "r0001"]  # each rank explained one, into its own shard
    assert len(read_marker(out)["series"]) == 3  # the first run's writer and the two ranks'


TARGETS_SCRIPT = textwrap.dedent("""
    import sys
    from dataset_helpers import LAYER, SMALL, TinyNet
    from pytorch_grad_cam.datasets import TopClasses, explain_dataset

    folder, out = sys.argv[1:3]
    explain_dataset(folder, TinyNet(), ["gradcam", "scorecam"], out=out, targets=TopClasses(2),
                    target_layers=[LAYER], preprocess=SMALL, workers=0, batch_size=3,
                    shard_size=2, progress=False)
""")


def test_torchrun_shares_images_not_rows_with_several_targets(tmp_path):
    """TopClasses(2): each rank explains every other image, all of its
    classes; the store equals one process's, each image's rows in one
    rank's shard."""
    folder = tmp_path / "photos"
    write_photos(folder, 6)
    script = tmp_path / "run.py"
    script.write_text(TARGETS_SCRIPT)
    completed = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script), str(folder),
         str(tmp_path / "two")], env=environment(), capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr[-3000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        explain_dataset(folder, TinyNet(), ["gradcam", "scorecam"], out=tmp_path / "one",
                        targets=TopClasses(2), **dict(OPTIONS, metrics=None, shard_size=2))
    finally:
        torch.set_num_threads(threads)
    two, one = open_results(tmp_path / "two"), open_results(tmp_path / "one")
    assert two.complete and len(two.frame) == 6 * 2 * 2
    by_image = two.frame.groupby("id", observed=True)["shard"].nunique()
    assert (by_image == 1).all()  # an image's rows are never split between shards
    rank_of = two.frame["shard"].astype(str).str.split("-").str[1]
    assert sorted(two.frame["id"][rank_of == "r0001"].unique()) == [
        "img_001.png", "img_003.png", "img_005.png"]
    columns = [c for c in one.frame.columns if c not in ("shard", "map_row")]
    assert two.frame[columns].equals(one.frame[columns])
    for row in range(len(two.frame)):
        np.testing.assert_array_equal(two.map(row), one.map(row))
