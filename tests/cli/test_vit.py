"""pytorch_grad_cam.cli.vit: ``grad-cam vit`` / vit_example.py."""
import cv2
import pytest
from checkpoint_helpers import COMMAND_REFUSAL_END, write_hostile_checkpoint
from cli_helpers import EXAMPLES, OFFLINE_ENV, run_script

from pytorch_grad_cam.cli import UsageError, vit
from pytorch_grad_cam.commands import run
from pytorch_grad_cam.models import network


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


def test_vit_example_offline_says_in_one_line_what_to_pass(tmp_path, monkeypatch, capsys):
    """No pretrained ViT ships with grad-cam: offline, without the weights in
    the cache, the documented ``python vit_example.py`` stops with the file
    to put where, the options that run without it, and the command that
    explains the bundled pretrained CNN offline."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # an empty torch hub cache
    monkeypatch.setattr(network, "online", lambda url, timeout=3.0: False)
    monkeypatch.chdir(tmp_path)
    assert run("vit", ["--image-path", str(EXAMPLES / "chelsea.jpg")], "vit_example.py") == 2
    captured = capsys.readouterr()
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert captured.out == "" and captured.err == (
        f"vit_example.py: error: --model vit_b_16: vit_b_16's ImageNet weights are not in the "
        f"torch hub cache ({cache}) and the network is unreachable, and no pretrained Vision "
        "Transformer ships with grad-cam; to explain with vit_b_16, download "
        f"https://download.pytorch.org/models/vit_b_16-c867db91.pth into {cache} and run this "
        "command again, or pass a vit_b_16 checkpoint with --weights FILE (--random-weights "
        "runs a smoke test whose maps mean nothing); to explain the image offline with the "
        "bundled pretrained CNN instead, run: python cam.py --image-path "
        f"{EXAMPLES / 'chelsea.jpg'} --model efficientnet_lite0\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("prog, argv, command", [
    ("vit_example.py", [], "python cam.py --model efficientnet_lite0"),
    ("vit_example.py", ["--image-path", "a b.jpg", "c.png", "--method", "gradcam", "layercam"],
     "python cam.py --image-path 'a b.jpg' c.png --method gradcam layercam "
     "--model efficientnet_lite0"),
    ("grad-cam vit", ["--method", "scorecam"], "grad-cam --method scorecam --model "
                                               "efficientnet_lite0"),
    ("python -m pytorch_grad_cam vit", [], "python -m pytorch_grad_cam --model "
                                           "efficientnet_lite0"),
])
def test_the_offline_message_gives_the_image_command_to_run(prog, argv, command):
    """The command that the offline message offers runs the image command
    of the same program, on the same images and methods, with the bundled
    pretrained CNN."""
    args = vit.build_parser(prog).parse_args(argv)
    assert vit.bundled_cnn_command(args, prog) == command


def test_vit_example_without_a_network_is_one_line(tmp_path):
    """``python vit_example.py`` where downloads fail (here: a proxy that
    refuses): exit status 2, the last line the error with the file to get."""
    env = dict(OFFLINE_ENV, TORCH_HOME=str(tmp_path / "torch_home"))
    result = run_script("vit_example.py", "--image-path", EXAMPLES / "chelsea.jpg", cwd=tmp_path,
                        env=env)
    assert result.returncode == 2
    last = result.stderr.splitlines()[-1]
    assert last.startswith("vit_example.py: error: --model vit_b_16: vit_b_16's ImageNet weights "
                           "could not be loaded (")
    assert "download https://download.pytorch.org/models/vit_b_16-c867db91.pth into " in last
    assert "--random-weights" in last
    assert last.endswith(f"run: python cam.py --image-path {EXAMPLES / 'chelsea.jpg'} --model "
                         "efficientnet_lite0")
    assert "Traceback" not in result.stderr and not (tmp_path / "output").exists()


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
