"""pytorch_grad_cam.cli.vit: ``grad-cam vit`` / vit_example.py."""
import cv2
import pytest

from checkpoint_helpers import COMMAND_REFUSAL_END, write_hostile_checkpoint
from cli_helpers import EXAMPLES, run_script
from pytorch_grad_cam.cli import UsageError, vit


def test_vit_example_random_weights_runs(tmp_path):
    result = run_script("vit_example.py", "--image-path", EXAMPLES / "coffee.jpg",
                        "--random-weights", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "RANDOM weights" in result.stderr and "meaningless" in result.stderr
    assert "target layer encoder.layers[-1].ln_1" in result.stdout
    # the vit command always names the model (and random weights), never cam.py's names
    name = "coffee_vit_b_16_random_gradcam_cam.jpg"
    picture = cv2.imread(str(tmp_path / "output" / name))
    assert picture.shape == cv2.imread(str(EXAMPLES / "coffee.jpg")).shape
    assert sorted(p.name for p in (tmp_path / "output").iterdir()) == [name]
    # the map is not empty: the random head is not all zeros
    assert "all zeros" not in result.stderr


def test_vit_example_help_is_the_vit_command(tmp_path):
    result = run_script("vit_example.py", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == vit.build_parser("vit_example.py").format_help()
    assert result.stdout.startswith("usage: vit_example.py [-h]")
    assert "encoder.layers[-1].ln_1 (torchvision), blocks[-1].norm1 (timm)" in result.stdout


def test_random_weights_give_the_zero_head_random_weights():
    args = vit.build_parser().parse_args(["--random-weights"])
    with pytest.warns(UserWarning, match="RANDOM weights"):
        loaded = vit.load_vit(args)
    assert loaded.name == "vit_b_16 (random weights)" and loaded.input_size == 224
    assert bool(loaded.model.heads.head.weight.any())
    assert not loaded.model.training


def test_weights_and_random_weights_exclude_each_other():
    args = vit.build_parser().parse_args(["--weights", "x.pt", "--random-weights"])
    with pytest.raises(UsageError, match="exclude each other"):
        vit.load_vit(args)



@pytest.mark.parametrize("model", ["vit_b_16", "timm:deit_tiny_patch16_224"])
def test_vit_refuses_a_hostile_checkpoint_unless_trusted(model, tmp_path, capsys):
    if model.startswith("timm:"):
        pytest.importorskip("timm")
    marker = tmp_path / "marker"
    evil = write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model", model, "--weights",
            str(evil), "--output-dir", str(tmp_path / "out")]
    assert vit.main(argv, prog="grad-cam vit") == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"grad-cam vit: error: --weights {evil}: holds pickled Python objects (")
    assert err[0].endswith(COMMAND_REFUSAL_END) and not marker.exists()
    # trusted, the file is unpickled (and runs): the option reaches the loader
    assert vit.main(argv + ["--trust-checkpoint"], prog="grad-cam vit") == 2
    assert capsys.readouterr().err.endswith("holds NoneType, neither a state_dict nor a model\n")
    assert marker.exists()
