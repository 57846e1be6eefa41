"""pytorch_grad_cam.app.devices: one device choice, each front-end's words."""
import pytest
import torch

from pytorch_grad_cam.app import devices
from pytorch_grad_cam.app.devices import DeviceError, choose_device, device_option
from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.demo.models import DemoError
from pytorch_grad_cam.demo.models import choose_device as demo_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@no_cuda
def test_auto_and_explicit_devices(monkeypatch):
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert choose_device("auto") == torch.device("cpu")
    assert choose_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    assert choose_device("auto") == torch.device("mps")  # the command line: cuda, mps, cpu
    assert choose_device("auto", mps=False) == torch.device("cpu")  # the demo: cuda, cpu
    assert choose_device("mps") == torch.device("mps")


@no_cuda
@pytest.mark.parametrize("requested, reason", [
    ("cuda", "CUDA is not available here"), ("cuda:1", "CUDA is not available here"),
    ("gpu", "not a device"), ("mps", "Apple's MPS backend is not available here")])
def test_unavailable_devices_say_why(requested, reason, monkeypatch):
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    with pytest.raises(DeviceError) as caught:
        choose_device(requested)
    assert (caught.value.requested, caught.value.reason) == (requested, reason)
    assert str(caught.value) == f"device {requested!r}: {reason}"


@no_cuda
def test_the_command_line_words(monkeypatch):
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    with pytest.raises(UsageError) as caught:
        device_option("cuda")
    assert str(caught.value) == (f"--device cuda: CUDA is not available here (torch "
                                 f"{torch.__version__}); use --device cpu or auto")
    with pytest.raises(UsageError) as caught:
        device_option("mps")
    assert str(caught.value) == ("--device mps: Apple's MPS backend is not available here; use "
                                 "--device cpu or auto")
    with pytest.raises(UsageError, match="--use-cuda contradicts --device cpu; give one of them"):
        device_option("cpu", use_cuda=True)
    with pytest.warns(UserWarning, match="--use-cuda: CUDA is not available; running on the CPU"):
        assert device_option("auto", use_cuda=True) == torch.device("cpu")


@no_cuda
def test_the_demo_words(monkeypatch):
    monkeypatch.setattr(devices, "mps_available", lambda: True)
    assert demo_device("auto") == torch.device("cpu")  # the demo's auto leaves MPS out
    with pytest.raises(DemoError) as caught:
        demo_device("cuda")
    assert str(caught.value) == "device 'cuda': CUDA is not available here; use auto or cpu"
    with pytest.raises(DemoError) as caught:
        demo_device("gpu")
    assert str(caught.value) == "device 'gpu': not a device; use auto, cpu or cuda"
