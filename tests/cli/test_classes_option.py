"""Several classes per image on the command line: ``--top-k K`` and a
repeated ``--target-category`` (alias ``--target-class``). Each method
explains an image's K classes in ONE call (one recording pass), one set of
pictures per class named by the class; the options' errors are one line
before any heavy work. A tiny CNN (5 classes, named by a --class-names
file) keeps the runs fast."""
import argparse
import contextlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cli_helpers import EXAMPLES
from torchvision.models.vision_transformer import VisionTransformer

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.cli import UsageError, image_parser, job, models, outputs, vit
from pytorch_grad_cam.cli.app import run_command
from pytorch_grad_cam.cli.parser import build_vit_parser
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

CHELSEA = EXAMPLES / "chelsea.jpg"
NAMES = ["cat", "dog", "cup", "car", "sky"]
KINDS = ("cam", "gb", "cam_gb")


def _tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, 5)).eval()


@pytest.fixture
def tiny():
    return _tiny_cnn()


@pytest.fixture
def names_file(tmp_path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n")
    return path


def _ranked(model: torch.nn.Module) -> list[int]:
    """The tiny model's classes for chelsea.jpg, most probable first (the
    command's preprocessing: resized to 32 x 32, RGB, ImageNet-normalised)."""
    rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(CHELSEA)), (32, 32)), cv2.COLOR_BGR2RGB)
    with torch.no_grad():
        scores = model(preprocess_image(np.float32(rgb) / 255))[0]
    return [int(i) for i in torch.argsort(scores, descending=True)]


def _run(model, argv, capsys, parser=None, **options) -> tuple[int, str, str]:
    status = run_command(["--image-path", str(CHELSEA), "--no-progress", *argv],
                         parser or image_parser("cam.py"),
                         load=lambda args: models.LoadedModel(model, "tiny", 32), **options)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _files(names, methods, classes=(None,)):
    found = []
    for name in classes:
        stem = "chelsea" if name is None else f"chelsea_{name}"
        found += [f"{stem}_{method}_{kind}.jpg" for method in methods for kind in KINDS]
        if len(methods) > 1:
            found.append(f"{stem}_methods.jpg")
    return sorted(found)


# ----------------------------------------------------------------- parser
def test_several_classes_repeated_or_in_one_option_and_the_alias():
    args = image_parser().parse_args(["--target-category", "281", "285", "--target-class",
                                      "tabby"])
    assert args.target_category == ["281", "285", "tabby"] and args.top_k is None
    assert image_parser().parse_args(["--top-k", "3"]).top_k == 3
    assert image_parser().parse_args([]).target_category is None


@pytest.mark.parametrize("argv, message", [
    (["--top-k", "3", "--target-category", "tabby"],
     "argument --target-category/--target-class: not allowed with argument --top-k"),
    (["--target-class", "tabby", "--top-k", "3"],
     "argument --top-k: not allowed with argument --target-category/--target-class"),
    (["--top-k", "0"], "argument --top-k: must be a positive integer, got '0'"),
    (["--top-k", "-2"], "argument --top-k: must be a positive integer, got '-2'"),
    (["--top-k", "two"], "argument --top-k: must be a positive integer, got 'two'"),
])
def test_parser_errors(argv, message):
    with pytest.raises(UsageError) as caught:
        image_parser().parse_args(argv)
    assert str(caught.value) == message


# ------------------------------------------------ errors before heavy work
@pytest.mark.parametrize("argv, message", [
    (["--top-k", "1001"], "--top-k 1001: more classes than the model has (allowed 1..1000)"),
    (["--target-category", "281", "--target-class", "Tabby"],
     "--target-category '281' and 'Tabby' are the same class, 281 (tabby); give each class "
     "once"),
    (["--target-category", "281", "tabbby"],
     "--target-category 'tabbby': no class has that name; close matches: 281 (tabby), "
     "868 (tray)"),
])
def test_imagenet_class_errors_come_before_the_model_loads(argv, message, tmp_path, capsys):
    def no_model(args):
        raise AssertionError("the model was loaded")

    status = run_command(["--image-path", str(CHELSEA), "--output-dir", str(tmp_path / "out"),
                          *argv], image_parser("cam.py"), load=no_model)
    assert status == 2
    assert capsys.readouterr().err == f"cam.py: error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_top_k_beyond_the_models_classes_is_refused_before_any_map(tiny, tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setattr(job, "compute_maps", lambda *a: pytest.fail("a map was computed"))
    status, out, err = _run(tiny, ["--top-k", "6", "--output-dir", str(tmp_path / "out")],
                            capsys)
    assert (status, out) == (2, "")
    assert err == "cam.py: error: --top-k 6: more classes than the model has (allowed 1..5)\n"
    assert not (tmp_path / "out").exists()


def test_a_class_names_file_bounds_top_k_and_checks_the_names_first(names_file, tmp_path,
                                                                    capsys):
    def no_model(args):
        raise AssertionError("the model was loaded")

    for argv, message in (
            (["--top-k", "6"], "--top-k 6: more classes than the model has (allowed 1..5)"),
            (["--target-category", "dog", "1"],
             "--target-category 'dog' and '1' are the same class, 1 (dog); give each class "
             "once")):
        status = run_command(["--image-path", str(CHELSEA), "--class-names", str(names_file),
                              "--output-dir", str(tmp_path), *argv], image_parser("cam.py"),
                             load=no_model)
        assert status == 2 and capsys.readouterr().err == f"cam.py: error: {message}\n"


# ------------------------------------------------------ files and report
def test_top_k_writes_one_set_of_pictures_per_class(tiny, names_file, tmp_path, capsys):
    ranked = _ranked(tiny)[:3]
    out = tmp_path / "out"
    status, printed, err = _run(tiny, ["--top-k", "3", "--method", "gradcam", "eigencam",
                                       "--class-names", str(names_file), "--output-dir",
                                       str(out)], capsys)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == _files(
        NAMES, ["gradcam", "eigencam"], [NAMES[c] for c in ranked])
    labels = [f"{c} ({NAMES[c]})" for c in ranked]
    lines = printed.splitlines()
    assert "cost per image (its 3 classes in one call per method):" in lines
    assert "  gradcam: 1 forward + 3 backward passes on cpu" in lines
    assert f"  explained classes {', '.join(labels)}" in lines
    wrote = [line for line in lines if "wrote" in line]
    assert wrote == (
        [f"  gradcam for {label}: wrote "
         + ", ".join(str(out / f"chelsea_{NAMES[c]}_gradcam_{k}.jpg") for k in KINDS)
         for c, label in zip(ranked, labels)]
        + [f"  eigencam for {label}: wrote "
           + ", ".join(str(out / f"chelsea_{NAMES[c]}_eigencam_{k}.jpg") for k in KINDS)
           for c, label in zip(ranked, labels)]
        + [f"  wrote {out / f'chelsea_{NAMES[c]}_methods.jpg'}" for c in ranked])


def test_each_class_gets_the_pictures_of_its_own_one_class_run(tiny, names_file, tmp_path,
                                                               capsys):
    """--top-k 1 names its files as --target-category <top class> does, and
    every class of a --top-k 3 run has the map of the one-class run (the
    same overlay, byte for byte) and its guided backpropagation."""
    ranked = _ranked(tiny)
    common = ["--method", "gradcam", "--class-names", str(names_file)]
    assert _run(tiny, [*common, "--top-k", "3", "--output-dir", str(tmp_path / "k3")],
                capsys)[0] == 0
    assert _run(tiny, [*common, "--top-k", "1", "--output-dir", str(tmp_path / "k1")],
                capsys)[0] == 0
    top = NAMES[ranked[0]]
    assert sorted(p.name for p in (tmp_path / "k1").iterdir()) == _files(NAMES, ["gradcam"],
                                                                         [top])
    for rank, index in enumerate(ranked[:3]):
        one = tmp_path / f"one{rank}"
        assert _run(tiny, [*common, "--target-category", NAMES[index], "--output-dir",
                           str(one)], capsys)[0] == 0
        name = NAMES[index]
        assert sorted(p.name for p in one.iterdir()) == _files(NAMES, ["gradcam"], [name])
        cam = f"chelsea_{name}_gradcam_cam.jpg"
        assert (one / cam).read_bytes() == (tmp_path / "k3" / cam).read_bytes()
        if rank == 0:
            assert (one / cam).read_bytes() == (tmp_path / "k1" / cam).read_bytes()
        for kind in ("gb", "cam_gb"):
            single = cv2.imread(str(one / f"chelsea_{name}_gradcam_{kind}.jpg")).astype(int)
            batched = cv2.imread(str(tmp_path / "k3" / f"chelsea_{name}_gradcam_{kind}.jpg"))
            assert np.abs(single - batched.astype(int)).max() <= 2, (name, kind)


def test_several_target_categories_in_the_order_given(tiny, names_file, tmp_path, capsys):
    out = tmp_path / "out"
    status, printed, err = _run(tiny, ["--target-category", "sky", "0", "--target-class", "3",
                                       "--class-names", str(names_file), "--output-dir",
                                       str(out)], capsys)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == _files(NAMES, ["gradcam"],
                                                           ["sky", "cat", "car"])
    assert "  explained classes 4 (sky), 0 (cat), 3 (car)" in printed.splitlines()


def test_without_class_options_the_names_and_report_are_unchanged(tiny, tmp_path, capsys):
    status, printed, err = _run(tiny, ["--output-dir", str(tmp_path)], capsys)
    assert status == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == _files(NAMES, ["gradcam"])
    assert f"  explained class class {_ranked(tiny)[0]}" in printed.splitlines()  # no names
    assert "cost per image:" in printed.splitlines()
    assert f"  gradcam: wrote {tmp_path / 'chelsea_gradcam_cam.jpg'}, " in printed


# ---------------------------------------------------- one pass for K classes
class _Counting(torch.nn.Module):
    """The tiny model, counting the calls of its forward (every pass the
    run makes: the probe, the prediction, the guided backpropagation, each
    method's). Its classifier's weights are positive, so that no class has
    an empty map (the library would make passes to say why)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _tiny_cnn()
        with torch.no_grad():
            self.net[-1].weight.uniform_(0.1, 1.0)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x)


@pytest.mark.parametrize("options", [
    ["--method", "gradcam"],
    ["--method", "gradcam", "scorecam", "ablationcam", "eigencam", "--batch-size", "4"],
    ["--method", "gradcam++", "--aug-smooth", "--eigen-smooth"],
    ["--method", "gradcam", "--sess", "--sess-scales", "2"],
], ids=["gradcam", "perturbation", "smoothing", "sess"])
def test_k_classes_cost_the_passes_of_one(options, tmp_path, capsys):
    counts = {}
    for k in (1, 4):
        model = _Counting().eval()
        status, _, err = _run(model, [*options, "--target-layer", "net[1]", "--top-k", str(k),
                                      "--output-dir", str(tmp_path / f"k{k}")], capsys)
        assert status == 0 and "all zeros" not in err, err
        counts[k] = model.calls
    assert counts[4] == counts[1], counts
    if options == ["--method", "gradcam"]:
        assert counts[4] == 4  # the probe, the prediction, the guided backprop., Grad-CAM's
    written = {k: len(list((tmp_path / f"k{k}").iterdir())) for k in (1, 4)}
    assert written[4] == 4 * written[1]


def test_guided_backpropagation_of_many_classes_goes_by_batch_size(tmp_path, capsys):
    """--top-k larger than --batch-size: the guided backpropagation takes
    batch-size copies of the image at a time (memory bounded), Grad-CAM
    still one pass."""
    model = _Counting().eval()
    status, _, err = _run(model, ["--top-k", "5", "--batch-size", "2", "--target-layer",
                                  "net[1]", "--output-dir", str(tmp_path)], capsys)
    assert status == 0, err
    assert model.calls == 1 + 1 + 3 + 1   # probe, prediction, guided 2 + 2 + 1, Grad-CAM
    assert len(list(tmp_path.iterdir())) == 5 * 3


def test_compute_maps_calls_each_cam_once_with_the_table(tiny, names_file, tmp_path):
    args = image_parser().parse_args(["--image-path", str(CHELSEA), "--top-k", "3",
                                      "--class-names", str(names_file), "--output-dir",
                                      str(tmp_path), "--no-progress"])
    prepared = job.prepare(args, load=lambda a: models.LoadedModel(tiny, "tiny", 32))
    calls = []
    with contextlib.ExitStack() as stack:
        job.make_cams(prepared, stack)
        real = prepared.cams["gradcam"]
        prepared.cams["gradcam"] = lambda **kw: calls.append(kw["targets"]) or real(**kw)
        results = job.explain_classes(prepared, CHELSEA)
    ranked = _ranked(tiny)[:3]
    assert [r.category for r in results] == ranked
    assert len(calls) == 1 and [[t.category for t in row] for row in calls[0]] == [ranked]
    for result in results:  # each class's map is the one-class call's
        with METHODS["gradcam"](model=tiny, target_layers=prepared.target_layers) as cam:
            single = cam(input_tensor=result.input_tensor,
                         targets=[ClassifierOutputTarget(result.category)])[0]
        np.testing.assert_array_equal(result.maps["gradcam"], single)


# ------------------------------------------------------------- --evaluate
def test_evaluate_scores_every_class_in_one_evaluation(tiny, names_file, tmp_path, capsys,
                                                       monkeypatch):
    real = outputs.evaluate_cam_methods
    calls = []

    def cheap(model, layers, inputs, **kwargs):
        calls.append((inputs.shape[0], [t.category for t in kwargs["targets"]]))
        return real(model, layers, inputs, metrics=["DropInConfidence", "Complexity"], **kwargs)

    monkeypatch.setattr(outputs, "evaluate_cam_methods", cheap)
    status, printed, err = _run(tiny, ["--top-k", "2", "--method", "gradcam", "eigencam",
                                       "--evaluate", "--class-names", str(names_file),
                                       "--output-dir", str(tmp_path)], capsys)
    assert status == 0, err
    ranked = _ranked(tiny)[:2]
    assert calls == [(2, ranked)]   # the classes of the image in one evaluation
    lines = printed.splitlines()
    starts = [lines.index(f"  class {c} ({NAMES[c]}):") for c in ranked]
    for start in starts:
        assert lines[start + 1].split() == ["method", "DropInConfidence", "Complexity"]
        rows = lines[start + 4:start + 6]
        assert [row.split()[0] for row in rows] == ["gradcam", "eigencam"]
        for row in rows:
            drop, complexity = (float(v) for v in row.split()[1:])
            assert 0 <= drop <= 1 and 0 <= complexity <= 1


# ----------------------------------------------------------------- the vit
def _tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                              hidden_dim=16, mlp_dim=32, num_classes=5).eval()
    torch.nn.init.normal_(model.heads.head.weight)  # torchvision starts it at zero
    return model


def test_the_vit_command_takes_top_k(tmp_path, capsys):
    out = tmp_path / "out"
    status, printed, err = _run(_tiny_vit(), ["--top-k", "2", "--method", "gradcam",
                                              "attentionrollout", "--output-dir", str(out)],
                                capsys, parser=build_vit_parser("vit_example.py"),
                                guided_backprop=False, default_model=None)
    assert status == 0, err
    explained = next(line for line in printed.splitlines()
                     if line.startswith("  explained classes "))
    first, second = (int(part.split()[-1]) for part in explained.split(", "))
    classes = [f"vit_b_16_class{first}", f"vit_b_16_class{second}"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"chelsea_{c}_{m}_cam.jpg" for c in classes for m in ("gradcam", "attentionrollout")]
        + [f"chelsea_{c}_methods.jpg" for c in classes])


def test_the_vit_offline_message_keeps_the_classes():
    args = argparse.Namespace(image_path=["a.jpg"], method=["gradcam"], top_k=3,
                              target_category=None)
    assert vit.bundled_cnn_command(args, "vit_example.py") == \
        "python cam.py --image-path a.jpg --top-k 3 --model efficientnet_lite0"
    args = argparse.Namespace(image_path=None, method=["gradcam"], top_k=None,
                              target_category=["tabby", "coffee mug"])
    assert vit.bundled_cnn_command(args, "grad-cam vit") == \
        "grad-cam --target-category tabby 'coffee mug' --model efficientnet_lite0"


def test_evaluate_of_more_classes_than_the_batch_size_goes_by_batch_size(
        tiny, names_file, tmp_path, capsys, monkeypatch):
    real = outputs.evaluate_cam_methods
    calls = []

    def cheap(model, layers, inputs, **kwargs):
        calls.append((inputs.shape[0], [t.category for t in kwargs["targets"]]))
        return real(model, layers, inputs, metrics=["Complexity"], **kwargs)

    monkeypatch.setattr(outputs, "evaluate_cam_methods", cheap)
    status, printed, err = _run(tiny, ["--top-k", "3", "--batch-size", "2", "--evaluate",
                                       "--class-names", str(names_file), "--output-dir",
                                       str(tmp_path)], capsys)
    assert status == 0, err
    ranked = _ranked(tiny)[:3]
    assert calls == [(2, ranked[:2]), (1, ranked[2:])]
    lines = printed.splitlines()
    for c in ranked:  # a table for each class
        start = lines.index(f"  class {c} ({NAMES[c]}):")
        assert lines[start + 4].split()[0] == "gradcam"
