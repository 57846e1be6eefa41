"""pytorch_grad_cam.datasets.runner: explain_dataset's numbers (maps,
predictions, targets) against the CAM API called directly, every kind of
source, bad data, resuming, the checks before any work and the progress
bar."""
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from dataset_helpers import LAYER, LAYER_SHAPE, SMALL, RaisingNet, TinyNet, photo, reference, write_photos
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from pytorch_grad_cam import GradCAM, ScoreCAM, datasets
from pytorch_grad_cam.datasets import (
    Preprocess,
    RunSummary,
    checks,
    explain_dataset,
    load_results,
    loop,
    open_results,
    runner,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

FAST = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "progress": False}
# stored maps are float16: a batch and a single image round the float32 map alike up to its
# last bit, which can flip one float16 step (2**-11 relative)
F16 = {"rtol": 1e-3, "atol": 1e-6}


def count_forwards(model):
    calls = []
    model.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    return calls


def test_the_runners_public_names_stay_where_they_were():
    """runner.py is split by job (checks, loop, explainer); what it exported
    is still importable from it and from pytorch_grad_cam.datasets."""
    assert {"default_workers", "explain_dataset", "model_fingerprint", "resolve_methods",
            "resolve_target_layers"} <= set(runner.__all__)
    assert runner.resolve_target_layers is checks.resolve_target_layers
    assert runner.default_workers is checks.default_workers
    assert datasets.explain_dataset is runner.explain_dataset
    assert datasets.model_fingerprint is runner.model_fingerprint


# ------------------------------------------------------------ the numbers
def test_maps_and_predictions_equal_the_cam_api(tmp_path):
    model = TinyNet()
    paths = write_photos(tmp_path / "photos", 7)
    summary = explain_dataset(tmp_path / "photos", model, "gradcam", out=tmp_path / "out",
                              batch_size=3, shard_size=4, **FAST)
    assert summary.processed == 7 and summary.status_counts == {"ok": 7}
    results = open_results(tmp_path / "out")
    frame = results.frame
    assert list(frame["id"]) == [p.name for p in paths]
    assert frame["shard"].nunique() == 2  # 4 + 3 items
    for row, path in enumerate(paths):
        expected, target, logits, _ = reference(model, path)
        stored = results.map(row)
        assert stored.shape == LAYER_SHAPE
        np.testing.assert_allclose(stored, expected, **F16)
        assert frame["target"][row] == target == frame["top1_class"][row]
        probabilities = torch.softmax(logits, 0)
        top = torch.topk(probabilities, 5)
        assert [frame[f"top{k + 1}_class"][row] for k in range(5)] == top.indices.tolist()
        np.testing.assert_allclose([frame[f"top{k + 1}_prob"][row] for k in range(5)],
                                   top.values.numpy(), rtol=1e-5)
        assert frame["score"][row] == pytest.approx(float(logits[target]), rel=1e-5)
        assert frame["prob"][row] == pytest.approx(float(probabilities[target]), rel=1e-5)
        image = cv2.imread(str(path))
        assert (frame["height"][row], frame["width"][row]) == image.shape[:2]
    assert summary.images_per_second > 0


def test_input_size_maps_and_resizing(tmp_path):
    model = TinyNet()
    paths = write_photos(tmp_path / "photos", 3)
    explain_dataset(tmp_path / "photos", model, "gradcam", out=tmp_path / "out",
                    map_size="input", **FAST)
    results = open_results(tmp_path / "out")
    for row, path in enumerate(paths):
        _, _, _, full = reference(model, path)
        np.testing.assert_allclose(results.map(row), full, atol=1e-3)  # float16 of [0, 1]
        # any size: bilinear from the stored map
        resized = results.map(row, size=(64, 96))
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(results.map(row))[None, None], size=(64, 96), mode="bilinear",
            align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(resized, expected, atol=1e-6)


def test_a_fixed_class_and_several_methods(tmp_path):
    model = TinyNet()
    paths = write_photos(tmp_path / "photos", 4)
    explain_dataset(tmp_path / "photos", model, ["gradcam", ScoreCAM], targets=3,
                    out=tmp_path / "out", batch_size=2, map_size="input", **FAST)
    frame = load_results(tmp_path / "out")
    assert list(frame["method"]) == ["gradcam", "scorecam"] * 4
    assert (frame["target"] == 3).all()
    results = open_results(tmp_path / "out")
    x = torch.cat([SMALL(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))[None]
                   for p in paths])
    targets = [ClassifierOutputTarget(3)] * 4
    expected = {"gradcam": GradCAM(model=model, target_layers=[model.features[-1]])(x, targets),
                "scorecam": ScoreCAM(model=model, target_layers=[model.features[-1]],
                                     progress=False)(x, targets)}
    for row in range(8):
        method, item = frame["method"][row], row // 2
        np.testing.assert_allclose(results.map(row), expected[method][item], atol=1e-3)
    assert not np.allclose(expected["gradcam"], expected["scorecam"], atol=1e-2)


class LabelledPhotos(Dataset):
    """(PIL image, label) items, like torchvision's ImageFolder, with samples."""

    def __init__(self, paths, labels):
        self.samples = list(zip(map(str, paths), labels))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        return Image.open(path).convert("RGB"), label


def test_per_item_labels_from_a_dataset(tmp_path):
    model = TinyNet()
    paths = write_photos(tmp_path / "photos", 5)
    labels = [4, 0, 2, 7, 1]  # 7 is out of range for 5 classes
    summary = explain_dataset(LabelledPhotos(paths, labels), model, "gradcam", targets="label",
                              out=tmp_path / "out", batch_size=2, **FAST)
    frame = load_results(tmp_path / "out")
    assert list(frame["id"]) == ["0", "1", "2", "3", "4"]
    assert list(frame["path"]) == [str(p) for p in paths]  # from the dataset's samples
    assert list(frame["label"]) == labels
    assert list(frame["status"]) == ["ok", "ok", "ok", "no_label", "ok"]
    assert "out of range" in frame["reason"][3]
    assert list(frame["target"]) == [4, 0, 2, -1, 1]
    results = open_results(tmp_path / "out")
    for row in (0, 1, 2, 4):
        expected, _, _, _ = reference(model, paths[row], classes=labels[row])
        np.testing.assert_allclose(results.map(row), expected, **F16)
    assert summary.status_counts == {"no_label": 1, "ok": 4}


def test_labels_from_path_pairs_and_no_labels_from_a_folder(tmp_path):
    model = TinyNet()
    paths = write_photos(tmp_path / "photos", 2)
    explain_dataset([(paths[0], 1), (paths[1], 3)], model, targets="label",
                    out=tmp_path / "out", **FAST)
    frame = load_results(tmp_path / "out")
    assert list(frame["target"]) == [1, 3] and list(frame["id"]) == [str(p) for p in paths]
    with pytest.raises(ValueError, match="targets='label' needs labels"):
        explain_dataset(tmp_path / "photos", model, targets="label", out=tmp_path / "o2", **FAST)


class TensorItems(Dataset):
    """Items of every in-memory kind: a ready float input, a uint8 tensor,
    a numpy array, a dict, bytes."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return 5

    def __getitem__(self, index):
        rgb = cv2.cvtColor(cv2.imread(str(self.paths[index])), cv2.COLOR_BGR2RGB)
        if index == 0:
            return SMALL(rgb), 1
        if index == 1:
            return torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
        if index == 2:
            return rgb
        if index == 3:
            return {"image": rgb, "label": torch.tensor(2), "path": "p3"}
        return self.paths[index].read_bytes()


def test_dataset_items_of_every_kind(tmp_path):
    model = TinyNet()
    paths = write_photos(tmp_path / "photos", 5)
    explain_dataset(TensorItems(paths), model, out=tmp_path / "out", batch_size=5, **FAST)
    results = open_results(tmp_path / "out")
    frame = results.frame
    assert (frame["status"] == "ok").all()
    assert list(frame["label"]) == [1, -1, -1, 2, -1]
    assert frame["path"][3] == "p3"
    for row, path in enumerate(paths):
        expected, target, _, _ = reference(model, path)
        np.testing.assert_allclose(results.map(row), expected, **F16)
        assert frame["target"][row] == target


class WorkerOnly(Dataset):
    """Paths, but only inside a DataLoader worker (raises in the main process)."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        if get_worker_info() is None:
            raise RuntimeError("decoded outside a worker")
        return str(self.paths[index])


def test_a_dataloader_decodes_in_its_workers(tmp_path):
    model = TinyNet()
    paths = write_photos(tmp_path / "photos", 6)
    loader = DataLoader(WorkerOnly(paths), batch_size=4, num_workers=2, shuffle=True)
    summary = explain_dataset(loader, model, out=tmp_path / "out", target_layers=[LAYER],
                              preprocess=SMALL, progress=False)
    assert summary.workers == 2 and summary.batch_size == 4
    results = open_results(tmp_path / "out")
    assert (results.frame["status"] == "ok").all(), results.frame["reason"].tolist()
    assert list(results.frame["id"]) == [str(i) for i in range(6)]  # index order, not shuffled
    for row, path in enumerate(paths):
        np.testing.assert_allclose(results.map(row), reference(model, path)[0], **F16)


def test_target_layers_default_and_errors(tmp_path):
    import torchvision

    write_photos(tmp_path / "photos", 2)
    model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=4).eval()
    summary = explain_dataset(tmp_path / "photos", model, out=tmp_path / "out",
                              preprocess=SMALL, workers=0, progress=False)  # features[-1]
    assert summary.status_counts == {"ok": 2}
    assert open_results(tmp_path / "out").config["target_layers"] == ["features[-1]"]
    # a model of no known family: the layer is found by probing
    explain_dataset(tmp_path / "photos", TinyNet(), out=tmp_path / "o2", preprocess=SMALL,
                    workers=0, progress=False)
    assert open_results(tmp_path / "o2").config["target_layers"] == ["features.4"]
    with pytest.raises(ValueError, match="did you mean features"):
        explain_dataset(tmp_path / "photos", TinyNet(), target_layers=["featurs[-1]"],
                        out=tmp_path / "o3", preprocess=SMALL)
    with pytest.raises(ValueError, match="is not a module of the model"):
        explain_dataset(tmp_path / "photos", TinyNet(), target_layers=[torch.nn.ReLU()],
                        out=tmp_path / "o4", preprocess=SMALL)
    model = TinyNet()
    explain_dataset(tmp_path / "photos", model, target_layers=[model.features[-1]],
                    out=tmp_path / "o5", preprocess=SMALL, workers=0, progress=False)
    assert open_results(tmp_path / "o5").config["target_layers"] == ["features.4"]


# --------------------------------------------------------------- bad data
def _bad_folder(folder):
    folder.mkdir()
    good = photo(1, 32, 32)  # RGB uint8 at the input size: no resizing, so 8 and 16 bits agree
    cv2.imwrite(str(folder / "a_good.png"), cv2.cvtColor(good, cv2.COLOR_RGB2BGR))
    gray = cv2.cvtColor(good, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(str(folder / "b_gray.png"), gray)
    cv2.imwrite(str(folder / "c_gray3.png"), np.repeat(gray[:, :, None], 3, axis=2))
    rgba = np.dstack([cv2.cvtColor(good, cv2.COLOR_RGB2BGR), np.full(good.shape[:2], 90, np.uint8)])
    cv2.imwrite(str(folder / "d_rgba.png"), rgba)
    cv2.imwrite(str(folder / "e_16bit.png"), cv2.cvtColor(good, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    (folder / "f_empty.jpg").write_bytes(b"")
    (folder / "g_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (folder / "h_text.jpg").write_text("not an image")
    cv2.imwrite(str(folder / "i_tiny.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(folder / "j_white.png"), np.full((40, 48, 3), 255, np.uint8))
    cv2.imwrite(str(folder / "k_good.jpg"), cv2.cvtColor(photo(2), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not listed: not an image suffix")


def test_bad_data_gets_rows_and_the_run_goes_on(tmp_path):
    model = RaisingNet()
    _bad_folder(tmp_path / "photos")
    summary = explain_dataset(tmp_path / "photos", model, "gradcam", out=tmp_path / "out",
                              batch_size=4, **FAST)
    results = open_results(tmp_path / "out")
    frame = results.frame.set_index("id")
    status = frame["status"].astype(str).to_dict()
    assert status == {"a_good.png": "ok", "b_gray.png": "ok", "c_gray3.png": "ok",
                      "d_rgba.png": "ok", "e_16bit.png": "ok", "f_empty.jpg": "unreadable",
                      "g_corrupt.png": "unreadable", "h_text.jpg": "unreadable",
                      "i_tiny.png": "too_small", "j_white.png": "model_error",
                      "k_good.jpg": "ok"}
    reason = frame["reason"].to_dict()
    assert reason["f_empty.jpg"] == "the file is empty (0 bytes)"
    assert "not a readable image" in reason["g_corrupt.png"]
    assert "1 x 1 pixels, smaller than min_image_size=8" in reason["i_tiny.png"]
    assert "ValueError: this model cannot explain white images" in reason["j_white.png"]
    assert summary.status_counts == {"model_error": 1, "ok": 6, "too_small": 1, "unreadable": 3}
    assert summary.bad == 5
    # the odd formats give the maps of the plain RGB image they hold
    base = results.map(results.find("a_good.png"))
    np.testing.assert_allclose(results.map(results.find("b_gray.png")),
                               results.map(results.find("c_gray3.png")), **F16)
    np.testing.assert_allclose(results.map(results.find("d_rgba.png")), base, **F16)
    np.testing.assert_allclose(results.map(results.find("e_16bit.png")), base, rtol=1e-3,
                               atol=1e-4)
    assert not np.allclose(results.map(results.find("b_gray.png")), base, atol=1e-3)
    # the batch with the white image: its other images equal their own runs
    np.testing.assert_allclose(results.map(results.find("k_good.jpg")),
                               reference(model, tmp_path / "photos" / "k_good.jpg")[0], **F16)
    with pytest.raises(ValueError, match="has no map: its status is unreadable"):
        results.map(results.find("f_empty.jpg"))


class CorruptItems(Dataset):
    """Items that are not images, as a Dataset of encoded photos can give
    them: corrupt bytes, bytes that PIL.Image.open (in the Dataset) cannot
    identify, a truncated photo that Image.open opened but did not decode,
    a corrupt file by its path, and one good photo."""

    def __init__(self, folder):
        self.folder = folder
        buffer = io.BytesIO()
        Image.fromarray(photo(5, 40, 40)).save(buffer, "PNG")
        self.png = buffer.getvalue()

    def __len__(self):
        return 5

    def __getitem__(self, index):
        if index == 0:
            return b"\x89PNG\r\n\x1a\n" + bytes(range(256))
        if index == 1:
            return Image.open(io.BytesIO(b"not an image at all")), 1
        if index == 2:
            return Image.open(io.BytesIO(self.png[:len(self.png) // 2])), 2
        if index == 3:
            return str(self.folder / "corrupt.png")
        return self.png


def test_the_reason_of_a_bad_item_names_no_object_in_memory(tmp_path):
    """A corrupt item's reason says what is wrong in words: never an object
    such as <_io.BytesIO object at 0x7f...> (Pillow's UnidentifiedImageError
    names its file so), and a photo opened lazily that turns out truncated
    is a row, not the end of the run."""
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    summary = explain_dataset(CorruptItems(tmp_path), TinyNet(), out=tmp_path / "out",
                              batch_size=5, **FAST)
    frame = load_results(tmp_path / "out")
    assert list(frame["status"]) == ["unreadable"] * 4 + ["ok"]
    assert list(frame["reason"]) == [
        "not a readable image (no image format recognises it)",
        "the Dataset raised UnidentifiedImageError: cannot identify image file (bytes in memory)",
        "not a readable image (OSError: image file is truncated)",
        "not a readable image (no image format recognises it)",
        ""]
    assert summary.status_counts == {"ok": 1, "unreadable": 4}


def test_a_missing_file_in_a_list_is_a_row(tmp_path):
    paths = write_photos(tmp_path / "photos", 2)
    summary = explain_dataset([paths[0], tmp_path / "gone.png", paths[1]], TinyNet(),
                              out=tmp_path / "out", **FAST)
    frame = load_results(tmp_path / "out")
    assert list(frame["status"]) == ["ok", "unreadable", "ok"]
    assert frame["reason"][1] == "no such file"
    assert summary.status_counts == {"ok": 2, "unreadable": 1}


def test_a_model_that_always_fails_stops_after_a_limit(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(70):
        cv2.imwrite(str(folder / f"w{i:02d}.png"), np.full((10, 10, 3), 255, np.uint8))
    with pytest.raises(RuntimeError, match="raised on the last 64 images in a row"):
        explain_dataset(folder, RaisingNet(), out=tmp_path / "out", batch_size=8,
                        shard_size=16, **FAST)
    # what was explained before stopping is in the store
    assert len(load_results(tmp_path / "out")) >= 64


# --------------------------------------------------------------- resuming
def test_a_second_run_skips_what_is_done(tmp_path):
    write_photos(tmp_path / "photos", 5)
    model = TinyNet()
    first = explain_dataset(tmp_path / "photos", model, out=tmp_path / "out", batch_size=2,
                            shard_size=2, **FAST)
    before = load_results(tmp_path / "out")
    calls = count_forwards(model)
    second = explain_dataset(tmp_path / "photos", model, out=tmp_path / "out", batch_size=2,
                             shard_size=2, **FAST)
    assert (first.processed, first.skipped) == (5, 0)
    assert (second.processed, second.skipped) == (0, 5)
    assert calls == [1]  # the layer probe only: no image was explained again
    after = load_results(tmp_path / "out")
    assert after.drop(columns="shard").equals(before.drop(columns="shard"))
    # new files in the folder: only they are explained
    write_photos(tmp_path / "more", 2)
    for path in (tmp_path / "more").iterdir():
        path.rename(tmp_path / "photos" / f"new_{path.name}")
    third = explain_dataset(tmp_path / "photos", model, out=tmp_path / "out", batch_size=2,
                            shard_size=2, **FAST)
    assert (third.processed, third.skipped) == (2, 5)
    assert sorted(calls[1:]) == [1, 2]  # probe + one batch of the two new images
    assert len(load_results(tmp_path / "out")) == 7


def test_another_configuration_is_refused_before_any_work(tmp_path):
    write_photos(tmp_path / "photos", 3)
    explain_dataset(tmp_path / "photos", TinyNet(), "gradcam", out=tmp_path / "out", **FAST)
    shards = sorted((tmp_path / "out" / "shards").iterdir())
    for change, pattern in [({"methods": "scorecam"}, "methods"),
                            ({"model": TinyNet(seed=1)}, "model.state_dict_blake2b"),
                            ({"targets": 2}, "targets"),
                            ({"map_size": "input"}, "map_size"),
                            ({"metrics": ["Complexity"]}, "metrics")]:
        model = change.pop("model", TinyNet())
        calls = count_forwards(model)
        arguments = dict(FAST, methods="gradcam")
        arguments.update(change)
        with pytest.raises(ValueError, match=f"holds results of another configuration.*{pattern}"):
            explain_dataset(tmp_path / "photos", model, out=tmp_path / "out", **arguments)
        assert calls == [1]  # only the probe that finds the layer's resolution
        assert sorted((tmp_path / "out" / "shards").iterdir()) == shards
    summary = explain_dataset(tmp_path / "photos", TinyNet(), "scorecam", out=tmp_path / "out",
                              overwrite=True, **FAST)
    assert summary.processed == 3
    assert set(load_results(tmp_path / "out")["method"]) == {"scorecam"}


def test_bad_arguments_are_named_before_any_work(tmp_path):
    write_photos(tmp_path / "photos", 2)
    (tmp_path / "empty").mkdir()
    model = TinyNet()
    calls = count_forwards(model)
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="no such folder"):
        explain_dataset(tmp_path / "nowhere", model, out=out, **FAST)
    with pytest.raises(ValueError, match="the folder holds no image file"):
        explain_dataset(tmp_path / "empty", model, out=out, **FAST)
    with pytest.raises(ValueError, match="empty list"):
        explain_dataset([], model, out=out, **FAST)
    with pytest.raises(ValueError, match="empty Dataset"):
        explain_dataset(LabelledPhotos([], []), model, out=out, **FAST)
    with pytest.raises(ValueError, match=r"methods\[0\]: .*did you mean gradcam"):
        explain_dataset(tmp_path / "photos", model, "gradcma", out=out, **FAST)
    with pytest.raises(ValueError, match="metrics\\[0\\] is 'PointingGame' \\(it needs ground"):
        explain_dataset(tmp_path / "photos", model, metrics=["PointingGame"], out=out, **FAST)
    with pytest.raises(ValueError, match="targets=9 is out of range: the model has 5 classes"):
        explain_dataset(tmp_path / "photos", model, targets=9, out=out, **FAST)
    with pytest.raises(ValueError, match="map_size must be 'layer'"):
        explain_dataset(tmp_path / "photos", model, map_size="big", out=out, **FAST)
    with pytest.raises(ValueError, match="shard_size must be >= 1, got 0"):
        explain_dataset(tmp_path / "photos", model, shard_size=0, out=out, **FAST)
    with pytest.raises(TypeError, match="source must be a folder"):
        explain_dataset(42, model, out=out, **FAST)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        explain_dataset(tmp_path / "photos", "resnet", out=out, **FAST)
    with pytest.raises(ValueError, match="top_k=6 is more than the model's 5 classes"):
        explain_dataset(tmp_path / "photos", model, top_k=6, out=out, **FAST)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        explain_dataset(tmp_path / "photos", model, out=tmp_path / "file", **FAST)
    assert len(calls) <= 3  # at most the probes of the checks that need the model's output
    assert not out.exists() or not any((out / "shards").glob("*.npz"))


def test_progress_bar_shows_images_per_second(tmp_path, capsys):
    write_photos(tmp_path / "photos", 3)
    options = dict(FAST, progress=True)
    explain_dataset(tmp_path / "photos", TinyNet(), out=tmp_path / "out", **options)
    err = capsys.readouterr().err
    assert "explain" in err and "3/3" in err and "image/s" in err
    explain_dataset(tmp_path / "photos", TinyNet(), out=tmp_path / "o2", **FAST)
    assert "image/s" not in capsys.readouterr().err


class RecordingBar(loop.tqdm):
    """The runner's tqdm, recording how it was made and every update."""

    made: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.settings, self.updates = kwargs, []
        RecordingBar.made.append(self)

    def update(self, n=1):
        self.updates.append(n)
        return super().update(n)


def test_the_bar_advances_per_image_and_a_resumed_one_says_what_was_done(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "tqdm", RecordingBar)
    monkeypatch.setattr(RecordingBar, "made", [])
    paths = write_photos(tmp_path / "photos", 10)
    options = dict(FAST, batch_size=8, progress=True)
    explain_dataset(paths[:4], TinyNet(), out=tmp_path / "out", **options)
    explain_dataset(paths, TinyNet(), out=tmp_path / "out", **options)
    first, resumed = RecordingBar.made
    assert first.updates == [1] * 4  # per image, not per batch of 8
    assert (first.total, first.settings["initial"], first.desc) == (4, 0, "explain")
    assert resumed.updates == [1] * 6
    assert (resumed.total, resumed.settings["initial"]) == (10, 4)
    assert resumed.desc == "explain (resumed: 4 already done)"
    assert resumed.n == 10
    # as tqdm writes it: an image that takes 7 minutes is "420.00s/image", not 0.0 images/s
    slow = dict(resumed.format_dict, n=5, elapsed=420.0, rate=None)
    line = resumed.format_meter(**slow)
    assert "5/10" in line and "420.00s/image" in line
    fast = resumed.format_meter(**dict(resumed.format_dict, n=10, elapsed=2.0, rate=None))
    assert "3.00image/s" in fast  # 6 images of this run in 2 s


def test_the_summary_gives_seconds_per_image_when_slow():
    summary = RunSummary(out=Path("results"), items=25, skipped=8, processed=2,
                         status_counts={"ok": 10}, methods={}, metrics={}, ranking=[],
                         seconds=840.0)
    assert str(summary).splitlines()[1] == (
        "this run: 2 explained, 8 already done, 840.0 s, 420.0 s/image (1 process(es) on cpu, "
        "0 DataLoader worker(s) each, batch 1)")
    summary.processed, summary.seconds = 50, 4.0
    assert ", 4.0 s, 12.5 images/s (" in str(summary)
    summary.processed, summary.seconds = 0, 0.01  # nothing left to do: no rate at all
    assert ", 8 already done, 0.0 s (1 process(es)" in str(summary)


def test_the_model_is_left_as_it_was(tmp_path):
    write_photos(tmp_path / "photos", 2)
    model = TinyNet().train()
    model.head.weight.requires_grad_(False)
    hooks = [len(m._forward_hooks) for m in model.modules()]
    explain_dataset(tmp_path / "photos", model, out=tmp_path / "out", **FAST)
    assert model.training and all(m.training for m in model.modules())
    assert not model.head.weight.requires_grad and model.head.bias.requires_grad
    assert [len(m._forward_hooks) for m in model.modules()] == hooks
    assert all(p.grad is None for p in model.parameters())


def test_preprocess_is_checked_and_recorded(tmp_path):
    with pytest.raises(ValueError, match="Preprocess.size must be a positive int"):
        Preprocess(size=(0, 3))
    with pytest.raises(ValueError, match="Preprocess.std must be positive"):
        Preprocess(std=(1, 0, 1))
    custom = Preprocess(size=(24, 40), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    rgb = photo(3, 30, 30)
    x = custom(rgb)
    expected = (cv2.resize(rgb, (40, 24), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
                - 0.5) / 0.25
    np.testing.assert_allclose(x.numpy().transpose(1, 2, 0), expected, atol=1e-5)
    write_photos(tmp_path / "photos", 1)
    explain_dataset(tmp_path / "photos", TinyNet(), target_layers=[LAYER], preprocess=custom,
                    out=tmp_path / "out", workers=0, progress=False)
    results = open_results(tmp_path / "out")
    assert results.config["preprocess"] == {"size": [24, 40], "mean": [0.5] * 3,
                                            "std": [0.25] * 3}
    assert results.map(0).shape == (6, 10)  # the layer at 24 x 40 input


class Flaky(LabelledPhotos):
    """Raises for item 1, as a Dataset with a broken file does."""

    def __getitem__(self, index):
        if index == 1:
            raise OSError("image file is truncated")
        return super().__getitem__(index)


def test_a_dataset_that_raises_gives_a_row(tmp_path):
    paths = write_photos(tmp_path / "photos", 3)
    summary = explain_dataset(Flaky(paths, [0, 1, 2]), TinyNet(), out=tmp_path / "out",
                              batch_size=3, **FAST)
    results = open_results(tmp_path / "out")
    frame = results.frame
    assert list(frame["status"]) == ["ok", "unreadable", "ok"]
    assert frame["reason"][1] == "the Dataset raised OSError: image file is truncated"
    assert frame["path"][1] == str(paths[1])  # known from the dataset's samples
    assert summary.status_counts == {"ok": 2, "unreadable": 1}
    assert [row for row, _ in results.iter_maps()] == [0, 2]


def test_workers_fork_safely_after_opencv_used_its_threads(tmp_path):
    """Calling cv2.setNumThreads inside a forked worker could deadlock on the
    parent's OpenCV pool; the runner sets one OpenCV thread in the parent
    around the fork instead, and restores it. A DataLoader timeout turns a
    hang into an error."""
    paths = write_photos(tmp_path / "photos", 4)
    big = np.random.default_rng(0).random((1500, 1500, 3), dtype=np.float32)
    threads = cv2.getNumThreads()
    for run in range(3):
        for _ in range(3):
            cv2.resize(big, (700, 700), interpolation=cv2.INTER_AREA)  # the pool is busy
        loader = DataLoader(WorkerOnly(paths), batch_size=2, num_workers=2, timeout=60)
        summary = explain_dataset(loader, TinyNet(), out=tmp_path / f"out{run}",
                                  target_layers=[LAYER], preprocess=SMALL, progress=False)
        assert summary.status_counts == {"ok": 4}
        assert cv2.getNumThreads() == threads
