"""pytorch_grad_cam.cli.request: the image command's and vit's arguments are
checked before torch is imported, so a typo is one line at once."""
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import EXAMPLES, ROOT, _environment, run_module
from hostile_inputs import png_bomb

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.cli import UsageError, image_parser
from pytorch_grad_cam.cli.request import check_arguments

#: runs the dispatcher in a fresh interpreter and says, after it returned,
#: whether torch (or torchvision) was imported on the way
_PROBE = textwrap.dedent("""
    import sys
    from pytorch_grad_cam.commands import main
    status = main(sys.argv[1:], prog="cam.py")
    loaded = sorted(name for name in ("torch", "torchvision", "timm", "transformers")
                    if name in sys.modules)
    print("status", status, "loaded", ",".join(loaded) or "-", file=sys.stderr)
""")


def _probe(*args, cwd):
    return subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], cwd=cwd,
                          env=_environment(), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv, message", [
    (["--image-path", "nosuch.jpg"], "--image-path nosuch.jpg: no such file or folder"),
    (["--method", "gradcm"], "--method: unknown method 'gradcm' (did you mean gradcam"),
    (["--method", "nosuchmethod"], f"--method: unknown method 'nosuchmethod'; choose from "
                                   f"{', '.join(METHODS)}, all, everything or recommended"),
    (["--target-category", "tabbby"], "--target-category 'tabbby': no class has that name; "
                                      "close matches: 281 (tabby)"),
    (["--sess-scales", "3"], "--sess-scales only work with --sess (give --sess too)"),
    (["--batch-size", "0"], "argument --batch-size: must be a positive integer, got '0'"),
    (["--class-names", "nosuch.txt"], "--class-names nosuch.txt: no such file"),
])
def test_a_typo_is_reported_before_torch_is_imported(argv, message, tmp_path):
    result = _probe(*argv, cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"cam.py: error: {message}"), result.stderr
    assert lines[1:] == ["status 2 loaded -"], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_special_file_is_refused_before_torch_is_imported(tmp_path):
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "out").write_text("a file")
    result = _probe("--image-path", tmp_path / "folder.jpg" / "missing.jpg", cwd=tmp_path)
    assert "no such file or folder" in result.stderr and "loaded -" in result.stderr
    result = _probe("--image-path", EXAMPLES / "chelsea.jpg", "--output-dir", "out",
                    cwd=tmp_path)
    assert result.stderr.splitlines() == ["cam.py: error: --output-dir out: exists and is not a "
                                          "folder", "status 2 loaded -"]


def test_a_decompression_bomb_is_refused_by_its_header_before_torch_is_imported(tmp_path):
    """A 47 KB PNG of 20000 x 20000 pixels: refused from its header, before
    the model (and torch) is loaded; an image under --max-pixels passes
    this check, one over a lowered --max-pixels does not."""
    bomb = png_bomb(tmp_path / "bomb.png")
    result = _probe("--image-path", bomb, cwd=tmp_path)
    assert result.stderr.splitlines() == [
        f"cam.py: error: --image-path {bomb}: 20000 x 20000 pixels (400 megapixels) is more "
        "than --max-pixels 80000000; downscale it or raise --max-pixels", "status 2 loaded -"]
    small = png_bomb(tmp_path / "small.png", 300, 200)
    result = _probe("--image-path", small, "--max-pixels", "59999", cwd=tmp_path)
    assert result.stderr.splitlines()[1:] == ["status 2 loaded -"]
    assert "300 x 200 pixels (0.1 megapixels) is more than --max-pixels 59999" in result.stderr
    arguments = image_parser("cam.py").parse_args(["--image-path", str(small),
                                                   "--max-pixels", "60000"])
    assert check_arguments(arguments, "cam.py").image_paths == [small]


def test_list_classes_needs_no_torch(tmp_path):
    result = _probe("--list-classes", cwd=tmp_path)
    assert result.stderr == "status 0 loaded -\n"
    assert len(result.stdout.splitlines()) == 1000 and " 281  tabby\n" in result.stdout


def test_python_m_imports_no_torch_for_a_usage_error(tmp_path):
    """``python -X importtime -m pytorch_grad_cam --image-path nosuch.jpg``:
    the error line, and no torch among the imported modules."""
    result = run_module("--image-path", "nosuch.jpg", cwd=tmp_path,
                        env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == ["python -m pytorch_grad_cam: error: --image-path nosuch.jpg: no such "
                      "file or folder"]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    # the check's modules (those importlib imports by name are not timed)
    assert {"pytorch_grad_cam.app.methods", "pytorch_grad_cam.cli.images"} <= imported
    assert not {"torch", "torchvision"} & imported


def test_vit_checks_its_arguments_before_torch_too(tmp_path):
    script = _PROBE.replace('main(sys.argv[1:], prog="cam.py")',
                            'run("vit", sys.argv[1:], prog="vit_example.py")').replace(
        "import main", "import run")
    result = subprocess.run([sys.executable, "-c", script, "--method", "gradcm"], cwd=tmp_path,
                            env=_environment(), capture_output=True, text=True, timeout=120)
    assert result.stderr.splitlines()[0].startswith(
        "vit_example.py: error: --method: unknown method 'gradcm'")
    assert result.stderr.splitlines()[1] == "status 2 loaded -"


def test_the_checks_in_process(tmp_path):
    args = image_parser("cam.py").parse_args(
        ["--image-path", str(EXAMPLES / "chelsea.jpg"), str(EXAMPLES), "--method", "all,GradCAM",
         "--target-category", "Tabby", "--output-dir", str(tmp_path / "out"), "--sess"])
    checked = check_arguments(args, "cam.py")
    assert checked.methods == ["all", "gradcam"] and checked.sess == {}
    assert checked.image_paths[0] == EXAMPLES / "chelsea.jpg"
    assert set(checked.image_paths[1:]) == set(EXAMPLES.glob("*.jpg")) | set(EXAMPLES.glob("*.png"))
    assert checked.output_dir == tmp_path / "out" and checked.class_names is None
    # a name is checked against ImageNet only when the model is an ImageNet classifier for sure
    for extra in (["--model", "timm:resnet18"], ["--weights", "x.pt"], ["--num-classes", "3"]):
        args = image_parser().parse_args(["--image-path", str(EXAMPLES / "chelsea.jpg"),
                                          "--target-category", "dog", "--output-dir",
                                          str(tmp_path), *extra])
        assert check_arguments(args, "cam.py").methods == ["gradcam"]
    args.model = None
    args.weights = args.num_classes = None
    with pytest.raises(UsageError, match="'dog': no class has that name"):
        check_arguments(args, "cam.py")
    assert ROOT.is_dir()
