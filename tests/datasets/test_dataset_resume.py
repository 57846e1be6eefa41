"""A run killed with SIGKILL leaves nothing corrupt visible, and the
resumed run's results equal an uninterrupted run's. A run stopped with
Ctrl-C keeps every image it finished, also inside its first batch.

The child process is made to stop at a known moment, deterministically:
``computing``: a forward hook blocks the fourth forward pass (the first
batch of the second shard; the first is the layer probe), after shard 1
was committed; ``committing``: the ``_pre_commit`` hook of the atomic
writes blocks the second shard between writing its temporary file
(complete, fsync'ed) and renaming it. Either way the child writes a marker file, the test kills it
with SIGKILL, checks what a reader sees, resumes in this process and
compares with a run that was never interrupted.
"""
import os
import signal
import subprocess
import textwrap
import time

import numpy as np
import pytest
from dataset_helpers import LAYER, PYTHON, SMALL, TinyNet, environment, write_photos

from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.datasets import explain_dataset, load_results, open_results

needs_sigkill = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

OPTIONS = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "batch_size": 2, "shard_size": 4,
               "progress": False}

CHILD = textwrap.dedent("""
    import sys, time
    import pytorch_grad_cam.datasets.atomic as atomic
    from dataset_helpers import LAYER, SMALL, TinyNet
    from pytorch_grad_cam.datasets import explain_dataset

    mode, folder, out, marker = sys.argv[1:5]
    model = TinyNet()

    def stop_here():
        open(marker, "w").close()
        time.sleep(60)  # killed long before

    if mode == "computing":
        calls = []

        def hook(module, args, output):
            calls.append(1)
            if len(calls) == 4:  # probe, shard 1 (2 batches), then shard 2's first batch
                stop_here()

        model.register_forward_hook(hook)
    else:
        commits = []

        def pre_commit(temporary, final):
            if final.suffix == ".npz":
                commits.append(final)
                if len(commits) == 2:
                    stop_here()

        atomic._pre_commit = pre_commit
    explain_dataset(folder, model, "gradcam", out=out, target_layers=[LAYER], preprocess=SMALL,
                    workers=0, batch_size=2, shard_size=4, progress=False)
""")


def _kill_at_marker(tmp_path, mode, folder, out):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    marker = tmp_path / "marker"
    child = subprocess.Popen([PYTHON, str(script), mode, str(folder), str(out), str(marker)],
                             env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if child.poll() is not None:
                raise AssertionError(f"the child ended early: {child.communicate()[1].decode()}")
            if time.monotonic() > deadline:
                raise AssertionError("the child never reached the marker")
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def _comparable(frame):
    return frame.drop(columns=["shard", "map_row"]).reset_index(drop=True)


@needs_sigkill
@pytest.mark.parametrize("mode", ["computing", "committing"])
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, mode):
    folder = tmp_path / "photos"
    write_photos(folder, 10)
    out = tmp_path / "killed"
    _kill_at_marker(tmp_path, mode, folder, out)

    shard_dir = out / "shards"
    committed = sorted(p.name for p in shard_dir.glob("*.npz"))
    temporary = sorted(p.name for p in shard_dir.iterdir() if p.name.startswith("."))
    assert len(committed) == 1
    if mode == "committing":
        assert len(temporary) == 1 and ".tmp-" in temporary[0]  # written, never renamed
    # a reader sees the committed shard only, complete, and knows the run did not finish
    partial = open_results(out)
    assert len(partial.frame) == 4 and not partial.complete
    assert (partial.frame["status"] == "ok").all()
    assert not (out / "index.json").exists()

    summary = explain_dataset(folder, TinyNet(), "gradcam", out=out, **OPTIONS)
    assert (summary.skipped, summary.processed) == (4, 6)
    assert not [p for p in shard_dir.iterdir() if p.name.startswith(".")]  # cleaned up

    explain_dataset(folder, TinyNet(), "gradcam", out=tmp_path / "reference", **OPTIONS)
    resumed, reference = open_results(out), open_results(tmp_path / "reference")
    assert resumed.complete and reference.complete
    assert len(resumed.frame) == 10
    assert _comparable(resumed.frame).equals(_comparable(reference.frame))
    for row in range(10):
        np.testing.assert_array_equal(resumed.map(row), reference.map(row))
    assert resumed.index["status_counts"] == reference.index["status_counts"] == {"ok": 10}
    assert load_results(out)["id"].is_unique


class StopAtThirdImage(ScoreCAM):
    """Score-CAM that raises KeyboardInterrupt (Ctrl-C) from its own
    computation on the ``stop_at``-th image it explains; None: never."""

    stop_at = 3

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        self.images = getattr(self, "images", 0) + activations.shape[0]
        if self.stop_at is not None and self.images >= self.stop_at:
            raise KeyboardInterrupt
        return super().get_cam_weights(input_tensor, target_layer, targets, activations, grads)


def test_ctrl_c_keeps_every_finished_image_of_the_batch(tmp_path, monkeypatch):
    """Ctrl-C inside the first batch (8 images): the rows of the images
    finished before it (2) are committed, and the resumed run explains only
    the other 6; the result equals an uninterrupted run's (Grad-CAM runs on
    the whole batch, Score-CAM and the rows image by image)."""
    folder = tmp_path / "photos"
    write_photos(folder, 8)
    options = dict(OPTIONS, batch_size=8, shard_size=512)
    methods = ["gradcam", StopAtThirdImage]
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(folder, TinyNet(), methods, out=tmp_path / "out", **options)
    kept = open_results(tmp_path / "out")
    assert not kept.complete
    assert list(kept.frame["id"]) == ["img_000.png"] * 2 + ["img_001.png"] * 2
    assert list(kept.frame["method"]) == ["gradcam", "StopAtThirdImage"] * 2
    assert (kept.frame["status"] == "ok").all()

    monkeypatch.setattr(StopAtThirdImage, "stop_at", None)
    explained = []
    original = StopAtThirdImage.get_cam_weights

    def counted(self, input_tensor, *args):
        explained.append(input_tensor.shape[0])
        return original(self, input_tensor, *args)

    monkeypatch.setattr(StopAtThirdImage, "get_cam_weights", counted)
    summary = explain_dataset(folder, TinyNet(), methods, out=tmp_path / "out", **options)
    assert (summary.skipped, summary.processed) == (2, 6)
    assert explained == [1] * 6  # one image at a time, only those not done
    reference = explain_dataset(folder, TinyNet(), methods, out=tmp_path / "reference", **options)
    assert reference.processed == 8
    resumed, whole = open_results(tmp_path / "out"), open_results(tmp_path / "reference")
    assert resumed.complete and len(resumed.frame) == 16
    columns = ["id", "method", "status", "target", "top1_class", "top2_class"]
    assert resumed.frame[columns].equals(whole.frame[columns])
    np.testing.assert_allclose(resumed.frame["prob"], whole.frame["prob"], rtol=1e-5)
    for row in range(16):  # float16 maps; Grad-CAM's batch of 6 against one of 8
        np.testing.assert_allclose(resumed.map(row), whole.map(row), rtol=1e-3, atol=1e-6)
