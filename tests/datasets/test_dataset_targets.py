"""Several targets per image in explain_dataset: TopClasses(k) (each image's
k best classes) and MultiLabel(threshold, max_labels): one row per (image,
method, target), each method explaining all of an image's classes in one
call; the store, resuming (also of stores written before ranks existed),
the summary, the cost and the report."""
import html
import re

import cv2
import numpy as np
import pytest
import torch
from dataset_helpers import LAYER, SMALL, RaisingNet, TinyNet, reference, write_photos

from pytorch_grad_cam import ScoreCAM
from pytorch_grad_cam.datasets import (
    MultiLabel,
    StoreRefused,
    TopClasses,
    decode_image,
    explain_dataset,
    explainer,
    open_results,
    report,
    write_overlays,
)
from pytorch_grad_cam.datasets.cli import main
from pytorch_grad_cam.datasets.cost import run_cost
from pytorch_grad_cam.datasets.store import read_shard
from pytorch_grad_cam.datasets.summary import RunSummary
from pytorch_grad_cam.models.loading import LoadedModel
from pytorch_grad_cam.utils.target_sets import multilabel_classes

FAST = {"target_layers": [LAYER], "preprocess": SMALL, "workers": 0, "progress": False}
F16 = {"rtol": 1e-3, "atol": 1e-6}
NAMES = ["ant", "bee", "cat", "dog", "eel"]


def _logits(model, path):
    with torch.no_grad():
        return model(SMALL(decode_image(path))[None])[0]


def test_top_classes_gives_k_rows_per_image_best_first(tmp_path):
    model = TinyNet()
    paths = write_photos(tmp_path / "photos", 3)
    summary = explain_dataset(tmp_path / "photos", model, ["gradcam", "gradcam++"],
                              targets=TopClasses(3), class_names=NAMES, batch_size=2,
                              out=tmp_path / "out", **FAST)
    results = open_results(tmp_path / "out")
    frame = results.frame
    assert len(frame) == 3 * 2 * 3
    assert list(frame["rank"]) == [0, 1, 2] * 6
    assert list(frame["method"]) == (["gradcam"] * 3 + ["gradcam++"] * 3) * 3
    for path in paths:
        logits = _logits(model, path)
        best = torch.argsort(logits, descending=True)[:3].tolist()
        probabilities = torch.softmax(logits, 0)
        for method in ("gradcam", "gradcam++"):
            mine = frame[(frame["id"] == path.name) & (frame["method"] == method)]
            assert list(mine["target"]) == best
            assert list(mine["class_name"]) == [NAMES[c] for c in best]
            np.testing.assert_allclose(mine["score"], logits[best].numpy(), rtol=1e-5)
            np.testing.assert_allclose(mine["prob"], probabilities[best].numpy(), rtol=1e-5)
            assert (mine["top1_class"] == best[0]).all()
        for rank, target in enumerate(best):  # each map is the single-class Grad-CAM map
            expected, _, _, _ = reference(model, path, classes=target)
            np.testing.assert_allclose(results.map(results.find(path.name, "gradcam", rank)),
                                       expected, **F16)
    assert summary.methods["gradcam"]["ranks"] == {"0": 3, "1": 3, "2": 3}
    assert "gradcam: targets explained by rank (0 = each image's best): rank 0: 3, rank 1: 3, " \
           "rank 2: 3" in str(summary)
    assert results.config["targets"] == {"top_classes": 3}
    assert results.config["class_names"] == NAMES


def test_k_targets_cost_one_forward_pass_per_method_not_one_per_class(tmp_path):
    """No pass of its own chooses the 3 classes; each method makes its passes
    once for all three: per image 1 (gradcam, whose forward pass chooses the
    classes) + 1 (gradcam++) + 9 (scorecam), where a call per class would
    make 1 + 3 x 11."""
    write_photos(tmp_path / "photos", 4)
    model = TinyNet()
    calls, images, starts = [], [], []

    def count(module, args, output):
        calls.append(1)
        images.append(args[0].shape[0])

    model.register_forward_hook(count)

    def on_start(start):
        starts.append(start)
        calls.clear()
        images.clear()

    explain_dataset(tmp_path / "photos", model, ["gradcam", "gradcam++", "scorecam"],
                    targets=TopClasses(3), batch_size=4, on_start=on_start,
                    method_options={"scorecam": {"constant_channel_shortcut": False}},
                    out=tmp_path / "out", **FAST)
    assert sum(images) == 4 * 11
    # the batch of 4: gradcam (its forward pass chooses the classes), gradcam++; then
    # scorecam per image: its recording pass and its 8 masked inputs in chunks of
    # batch_size 4 (8 / 4 = 2)
    assert len(calls) == 2 + 4 * (1 + 2)
    assert run_cost(starts[0]).splitlines() == [
        "explaining 4 of 4 images with gradcam, gradcam++, scorecam at features[-1] on cpu",
        "cost per image:",
        "  gradcam, gradcam++: 1 forward + 1 backward pass on cpu",
        "  scorecam: ~9 forward passes on cpu",
        "  targets: each image's 3 best classes: the first method's forward pass chooses "
        "them; each method's backward passes and the metrics' passes once per class (x3)",
        "  in all: ~44 forward + 24 backward passes for 4 images on cpu"]


class StopAtThirdImage(ScoreCAM):
    """Score-CAM that raises KeyboardInterrupt (Ctrl-C) on the third image
    it explains (one call a image, all of its classes); None: never."""

    stop_at = 3

    def get_cam_weights(self, input_tensor, target_layer, targets, activations, grads):
        self.images = getattr(self, "images", 0) + 1
        if self.stop_at is not None and self.images >= self.stop_at:
            raise KeyboardInterrupt
        return super().get_cam_weights(input_tensor, target_layer, targets, activations, grads)


def test_resume_after_ctrl_c_with_top_classes(tmp_path, monkeypatch):
    write_photos(tmp_path / "photos", 6)
    options = dict(FAST, batch_size=8, targets=TopClasses(3))
    methods = ["gradcam", StopAtThirdImage]
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(tmp_path / "photos", TinyNet(), methods, out=tmp_path / "out", **options)
    kept = open_results(tmp_path / "out")
    assert list(kept.frame["id"]) == ["img_000.png"] * 6 + ["img_001.png"] * 6
    assert list(kept.frame["rank"]) == [0, 1, 2] * 4

    monkeypatch.setattr(StopAtThirdImage, "stop_at", None)
    summary = explain_dataset(tmp_path / "photos", TinyNet(), methods, out=tmp_path / "out",
                              **options)
    assert (summary.skipped, summary.processed) == (2, 4)
    whole = explain_dataset(tmp_path / "photos", TinyNet(), methods, out=tmp_path / "whole",
                            **options)
    assert whole.processed == 6
    resumed, reference_ = open_results(tmp_path / "out"), open_results(tmp_path / "whole")
    assert resumed.complete and len(resumed.frame) == 6 * 2 * 3
    assert not resumed.frame.duplicated(["id", "method", "rank"]).any()
    columns = ["id", "method", "rank", "status", "target", "top1_class", "top2_class"]
    assert resumed.frame[columns].equals(reference_.frame[columns])
    np.testing.assert_allclose(resumed.frame["prob"], reference_.frame["prob"], rtol=1e-5)
    for row in range(len(resumed.frame)):  # Grad-CAM's batch of 4 against one of 6
        np.testing.assert_allclose(resumed.map(row), reference_.map(row), rtol=1e-3, atol=1e-6)

    # another number of classes, or one class, is another configuration: refused
    with pytest.raises(StoreRefused, match=re.escape(
            "(targets.top_classes: 3 in the store, 2 now)")):
        explain_dataset(tmp_path / "photos", TinyNet(), methods, out=tmp_path / "out",
                        **dict(options, targets=TopClasses(2)))
    with pytest.raises(StoreRefused, match=re.escape(
            'targets: {"top_classes": 3} in the store, "top" now')):
        explain_dataset(tmp_path / "photos", TinyNet(), methods, out=tmp_path / "out",
                        **dict(options, targets=None))


def _strip_rank(store):
    """Rewrite every shard without the ``rank`` column, as the stores
    written before several targets per image were."""
    for path in sorted((store / "shards").glob("*.npz")):
        arrays = read_shard(path)
        del arrays["rank"]
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)


#: the configuration keys of a store of one class per image: unchanged, so that the
#: stores written before several targets per image resume
OLD_KEYS = {"store_version", "model", "target_layers", "reshape_transform", "methods",
            "method_classes", "method_options", "targets", "preprocess", "min_image_size",
            "map_size", "map_dtype", "top_k", "metrics", "metric_settings", "num_classes"}


def test_an_older_store_without_ranks_loads_and_resumes(tmp_path):
    paths = write_photos(tmp_path / "photos", 5)
    out = tmp_path / "out"
    explain_dataset(paths[:3], TinyNet(), ["gradcam", "gradcam++"], out=out, **FAST)
    _strip_rank(out)
    assert "rank" not in read_shard(next((out / "shards").glob("*.npz")))
    old = open_results(out)
    assert set(old.config) == OLD_KEYS and old.config["targets"] == "top"
    assert list(old.frame["rank"]) == [0] * 6
    assert old.find(str(paths[1]), "gradcam++") == 3

    summary = explain_dataset(paths, TinyNet(), ["gradcam", "gradcam++"], out=out, **FAST)
    assert (summary.skipped, summary.processed) == (3, 2)
    assert summary.status_counts == {"ok": 5}
    assert summary.methods["gradcam"]["ranks"] == {"0": 5}
    resumed = open_results(out)
    assert resumed.complete and list(resumed.frame["rank"]) == [0] * 10
    assert list(resumed.frame["id"]) == [str(p) for p in paths for _ in range(2)]


#: TinyNet's logits moved and sharpened so that, at 0.5, the six photos of
#: write_photos(.., 6) have 2, 4, 2, 1, 0 and 2 classes above the threshold
class MultiLabelNet(TinyNet):
    OFFSETS = torch.tensor([-0.39, -0.0115, 0.17, -0.26, 0.30])

    def forward(self, x):
        return (super().forward(x) - self.OFFSETS) * 400


def test_multilabel_ragged_counts_and_an_image_without_a_class(tmp_path):
    model = MultiLabelNet()
    paths = write_photos(tmp_path / "photos", 6)
    logits = torch.stack([_logits(model, p) for p in paths])
    expected = multilabel_classes(logits, 0.5)
    assert [len(c) for c in expected] == [2, 4, 2, 1, 0, 2]  # the test's premise
    forwards = []
    model.register_forward_hook(lambda m, args, out: forwards.append(args[0].shape[0]))
    starts = []
    summary = explain_dataset(tmp_path / "photos", model, "gradcam", targets=MultiLabel(0.5),
                              batch_size=6, report=True, on_start=starts.append,
                              out=tmp_path / "out", **FAST)
    assert run_cost(starts[0]).splitlines()[-2:] == [
        "  targets: every class with sigmoid(score) >= 0.5: 1 forward pass an image chooses "
        "them; each method's backward passes and the metrics' passes once per class (the "
        "totals count 1 an image: how many pass the threshold is known only during the run)",
        "  in all: ~12 forward + 6 backward passes for 6 images on cpu"]
    # the probe, the pass that chooses the classes, then one Grad-CAM call per number of
    # classes (2: images 0, 2, 5; 4: image 1; 1: image 3); image 4 has none
    assert forwards[1:] == [6, 3, 1, 1]
    frame = open_results(tmp_path / "out").frame
    for i, path in enumerate(paths):
        mine = frame[frame["id"] == path.name]
        if expected[i]:
            assert list(mine["target"]) == expected[i]
            assert list(mine["rank"]) == list(range(len(expected[i])))
            assert (mine["status"] == "ok").all()
            np.testing.assert_allclose(mine["prob"], torch.sigmoid(logits[i, expected[i]]),
                                       rtol=1e-5)
    empty = frame[frame["id"] == "img_004.png"]
    best = int(logits[4].argmax())
    reason = (f"no class has sigmoid(score) >= 0.5 (the most probable: class {best}, "
              f"{float(torch.sigmoid(logits[4, best])):.3f})")
    assert empty[["status", "reason", "rank", "target"]].values.tolist() == [
        ["no_target", reason, 0, -1]]
    assert empty["top1_class"].tolist() == [best]
    assert summary.status_counts == {"no_target": 1, "ok": 5}
    assert summary.methods["gradcam"]["ranks"] == {"0": 5, "1": 4, "2": 1, "3": 1}
    page = (tmp_path / "out" / "report.html").read_text()
    assert ('<td class="text">img_004.png</td><td class="text">no_target</td>'
            f'<td class="text">{html.escape(reason)}</td>') in page
    assert "<td>status no_target</td><td>1</td>" in page.replace(' class="text"', "")

    # at most max_labels classes an image, the most probable
    explain_dataset(tmp_path / "photos", MultiLabelNet(), "gradcam",
                    targets=MultiLabel(0.5, max_labels=2), out=tmp_path / "two", **FAST)
    capped = open_results(tmp_path / "two").frame
    ok = capped[capped["status"] == "ok"]
    assert ok.groupby("id").size().tolist() == [2, 2, 2, 1, 2]
    assert list(ok[ok["id"] == "img_001.png"]["target"]) == expected[1][:2]


def test_a_model_that_raises_while_choosing_the_classes(tmp_path):
    """RaisingNet raises on a white image: the pass that chooses the
    classes is made again image by image, and only the white one gets
    model_error rows."""
    write_photos(tmp_path / "photos", 3)
    cv2.imwrite(str(tmp_path / "photos" / "img_001.png"), np.full((40, 40, 3), 255, np.uint8))
    explain_dataset(tmp_path / "photos", RaisingNet(), "gradcam", targets=TopClasses(2),
                    batch_size=3, out=tmp_path / "out", **FAST)
    frame = open_results(tmp_path / "out").frame
    assert frame[["id", "status", "rank"]].values.tolist() == [
        ["img_000.png", "ok", 0], ["img_000.png", "ok", 1],
        ["img_001.png", "model_error", 0],
        ["img_002.png", "ok", 0], ["img_002.png", "ok", 1]]
    assert frame["reason"][2] == "the model raised ValueError: this model cannot explain " \
                                 "white images"


def test_the_report_shows_each_images_targets_side_by_side(tmp_path):
    write_photos(tmp_path / "photos", 3)
    explain_dataset(tmp_path / "photos", TinyNet(), ["gradcam", "layercam"],
                    targets=TopClasses(2), class_names=NAMES, report=True,
                    out=tmp_path / "out", **FAST)
    results = open_results(tmp_path / "out")
    frame = results.frame
    page = (tmp_path / "out" / "report.html").read_text()
    assert ('<table class="targets"><tr><th class="text">image</th><th class="text">method'
            '</th><th>rank 0</th><th>rank 1</th></tr>') in page
    first = frame[(frame["method"] == "gradcam") & (frame["rank"] == 0)]
    best = first.loc[first["prob"].idxmax()]  # the first image of the gallery
    rows = frame[frame["id"] == best["id"]]

    def cell(method, rank):
        row = rows[(rows["method"] == method) & (rows["rank"] == rank)].iloc[0]
        caption = (f"class {row['target']} {NAMES[row['target']]}: score {row['score']:.3f}, "
                   f"p={row['prob']:.3f}")
        return (f'<td><figure><figcaption>{caption}</figcaption><img src="report_files/'
                f'most-000-{method}-rank{rank}.jpg" width="{width}" height="{height}" '
                f'alt="{caption}"></figure></td>')

    height, width = (round(224 * best["height"] / max(best["height"], best["width"])),
                     round(224 * best["width"] / max(best["height"], best["width"])))
    photo = (f'<figure><img src="report_files/most-000-image.jpg" width="{width}" '
             f'height="{height}" alt="{best["id"]}"><figcaption>{best["id"]}</figcaption>'
             "</figure>")
    assert (f'<tr><td class="text" rowspan="2">{photo}</td><td class="text">gradcam</td>'
            + cell("gradcam", 0) + cell("gradcam", 1) + "</tr>"
            + '<tr><td class="text">layercam</td>' + cell("layercam", 0) + cell("layercam", 1)
            + "</tr>") in page
    assert ('<h2>Targets explained per rank</h2><p>Rank 0 is each image\'s best class; each '
            'count is of the images explained at that rank.</p><table><tr><th class="text">'
            'method</th><th>rank 0</th><th>rank 1</th></tr><tr><td class="text">gradcam</td>'
            '<td>3</td><td>3</td></tr><tr><td class="text">layercam</td><td>3</td><td>3</td>'
            "</tr></table>") in page
    assert "<td>targets</td><td>each image's 2 best classes</td>" in page.replace(
        ' class="text"', "").replace("&#x27;", "'")
    for name in re.findall(r'<img src="report_files/([^"]+\.jpg)"', page):
        assert (tmp_path / "out" / "report_files" / name).is_file()
    # overlays on request: one file per (image, method, target)
    written = write_overlays(tmp_path / "out", tmp_path / "overlays")
    assert sorted(p.name for p in written)[:4] == [
        "img_000.png_gradcam_rank0.jpg", "img_000.png_gradcam_rank1.jpg",
        "img_000.png_layercam_rank0.jpg", "img_000.png_layercam_rank1.jpg"]
    assert len(written) == 12


@pytest.mark.parametrize("targets, error, message", [
    (TopClasses, ValueError, "TopClasses(k) must be a positive int, got 0"),
    (lambda _: MultiLabel(1.5), ValueError,
     "MultiLabel(threshold) must be in (0, 1] (a sigmoid probability), got 1.5"),
    (lambda _: MultiLabel(0.5, max_labels=0), ValueError,
     "MultiLabel(max_labels) must be a positive int, got 0"),
    (lambda _: "top3", ValueError, "targets must be None (each image's top class), 'label' "
     "(each item's label), a class index, TopClasses(k) or MultiLabel(threshold, max_labels), "
     "got 'top3'"),
])
def test_bad_targets_are_named(tmp_path, targets, error, message):
    write_photos(tmp_path / "photos", 1)
    with pytest.raises(error, match=re.escape(message)):
        explain_dataset(tmp_path / "photos", TinyNet(), out=tmp_path / "out", targets=targets(0),
                        **FAST)
    assert not (tmp_path / "out").exists()


def test_more_classes_than_the_model_has_or_wrong_names(tmp_path):
    write_photos(tmp_path / "photos", 1)
    with pytest.raises(ValueError, match=re.escape(
            "targets=TopClasses(6) asks for more classes than the model's 5")):
        explain_dataset(tmp_path / "photos", TinyNet(), out=tmp_path / "out",
                        targets=TopClasses(6), **FAST)
    with pytest.raises(ValueError, match=re.escape(
            "class_names has 2 names but the model has 5 classes")):
        explain_dataset(tmp_path / "photos", TinyNet(), out=tmp_path / "out2",
                        class_names=["a", "b"], **FAST)


def test_the_command_explains_each_images_top_classes(tmp_path, capsys):
    write_photos(tmp_path / "photos", 2)
    out = tmp_path / "out"
    arguments = [str(tmp_path / "photos"), "--method", "gradcam", "--target-layer", LAYER,
                 "--top-classes", "2", "--out", str(out), "--no-progress", "--workers", "0",
                 "--device", "cpu"]
    assert main(arguments, load=lambda args: LoadedModel(TinyNet(), "tiny", input_size=32)) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[3] == ("  targets: each image's 2 best classes: the first method's forward "
                          "pass chooses them; each method's backward passes and the metrics' "
                          "passes once per class (x2)")
    assert "gradcam: targets explained by rank (0 = each image's best): rank 0: 2, rank 1: 2" \
        in printed
    frame = open_results(out).frame
    assert list(frame["rank"]) == [0, 1, 0, 1]
    # the same command with --top-classes 3 is another configuration
    arguments[arguments.index("2")] = "3"
    assert main(arguments, load=lambda args: LoadedModel(TinyNet(), "tiny", input_size=32)) == 2
    assert "(targets.top_classes: 2 in the store, 3 now)" in capsys.readouterr().err


def test_a_batch_with_too_many_maps_for_one_call_is_explained_a_few_images_a_call(
        tmp_path, monkeypatch):
    """MAPS_PER_CALL bounds the (image, class) maps of one call (a MultiLabel
    threshold that hundreds of classes pass): here 4, so that 4 images of 3
    classes go one image a call; the maps are those of one call."""
    write_photos(tmp_path / "photos", 4)
    explain_dataset(tmp_path / "photos", TinyNet(), "gradcam", targets=TopClasses(3),
                    batch_size=4, out=tmp_path / "whole", **FAST)
    monkeypatch.setattr(explainer, "MAPS_PER_CALL", 4)
    model = TinyNet()
    forwards = []
    model.register_forward_hook(lambda m, args, out: forwards.append(args[0].shape[0]))
    explain_dataset(tmp_path / "photos", model, "gradcam", targets=TopClasses(3), batch_size=4,
                    out=tmp_path / "split", **FAST)
    assert forwards[1:] == [1, 1, 1, 1]  # after the probe: one image a call, choosing its classes
    split, whole = open_results(tmp_path / "split"), open_results(tmp_path / "whole")
    assert split.frame["target"].equals(whole.frame["target"])
    for row in range(12):
        np.testing.assert_allclose(split.map(row), whole.map(row), **F16)


def test_many_ranks_are_shown_in_short(tmp_path, monkeypatch):
    summary = RunSummary(out=tmp_path, items=2, skipped=0, processed=2, status_counts={"ok": 2},
                         methods={"gradcam": {"ranks": {str(r): 2 for r in sorted(
                             range(12), key=str)}}}, metrics={}, ranking=[], seconds=1.0)
    assert ("gradcam: targets explained by rank (0 = each image's best): rank 0: 2, rank 1: 2, "
            "rank 2: 2, rank 3: 2, rank 4: 2, rank 5: 2, rank 6: 2, rank 7: 2, rank 8: 2, ..., "
            "rank 11: 2") in str(summary).splitlines()
    write_photos(tmp_path / "photos", 2)
    monkeypatch.setattr(report, "SHOWN_RANKS", 2)
    explain_dataset(tmp_path / "photos", TinyNet(), "gradcam", targets=TopClasses(3),
                    report=True, out=tmp_path / "out", **FAST)
    page = (tmp_path / "out" / "report.html").read_text()
    # the table of ranks: the first and the last; the gallery: the first two
    assert ('<th class="text">method</th><th>rank 0</th><th>rank 2</th></tr>'
            '<tr><td class="text">gradcam</td><td>2</td><td>2</td></tr>') in page
    assert page.count("<th>rank 2</th>") == 1 and page.count("<th>rank 1</th>") == 1
    assert "<p>(the first 2 targets of each image; some have up to 3)</p>" in page
    assert not list((tmp_path / "out" / "report_files").glob("*rank2.jpg"))
