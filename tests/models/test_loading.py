"""pytorch_grad_cam.models.loading: the library's API for loading models and
checkpoints; its errors name the argument as the caller spells it."""
import pytest
import torch
import torchvision
from checkpoint_helpers import LIBRARY_REFUSAL_END, write_hostile_checkpoint

from pytorch_grad_cam.app.errors import UsageError
from pytorch_grad_cam.app.models import OPTION_NAMES, load_from_options
from pytorch_grad_cam.cli import models as cli_models
from pytorch_grad_cam.models import loading, network
from pytorch_grad_cam.models.loading import (
    ArgumentNames,
    LoadedModel,
    LoadError,
    WeightsUnavailable,
    load_model,
)


def test_argument_names_in_python_and_on_a_command_line():
    python = ArgumentNames()
    assert python.given("model", "resnet5") == "model='resnet5'"
    assert python.flag("random_weights") == "random_weights=True"
    assert python.taking("weights", "FILE") == "weights=FILE"
    assert python.trust() == "pass trust_checkpoint=True"
    assert OPTION_NAMES.given("model", "resnet5") == "--model resnet5"
    assert OPTION_NAMES.given("model", "resnet5", quote=True) == "--model 'resnet5'"
    assert OPTION_NAMES.flag("random_weights") == "--random-weights"
    assert OPTION_NAMES.taking("weights", "FILE") == "--weights FILE"
    assert OPTION_NAMES.trust() == "add --trust-checkpoint (trust_checkpoint=True in Python)"


def test_errors_are_value_errors_that_name_the_argument(tmp_path):
    with pytest.raises(LoadError) as caught:
        load_model("resnet5", None)
    error = caught.value
    assert isinstance(error, ValueError) and error.argument == "model"
    assert str(error).startswith("model='resnet5': not a torchvision classification model (did "
                                 "you mean resnet50")
    assert "name a timm model as timm:NAME or a Hugging Face one as hf:DIR_OR_ID" in str(error)
    with pytest.raises(LoadError) as caught:
        load_model("resnet18", "x.pt", random_weights=True)
    assert (caught.value.argument, str(caught.value)) == (
        "weights", "weights and random_weights=True exclude each other")
    with pytest.raises(LoadError) as caught:
        load_model("resnet18", None, num_classes=7)
    assert str(caught.value) == ("num_classes=7: resnet18's pretrained weights have 1000 "
                                 "classes; give the fine-tuned checkpoint with weights=FILE (or "
                                 "random_weights=True for a smoke test)")
    with pytest.raises(LoadError) as caught:
        load_model("efficientnet_lite0", None, random_weights=True)
    assert str(caught.value) == ("random_weights=True: not available for the bundled "
                                 "efficientnet_lite0; use a torchvision, timm: or hf: model")
    with pytest.raises(LoadError) as caught:
        load_model("squeezenet1_1", str(tmp_path / "missing.pt"))
    assert (caught.value.argument, caught.value.reason) == ("weights", "no such file")
    assert str(caught.value) == f"weights={str(tmp_path / 'missing.pt')!r}: no such file"


def test_the_command_line_gets_its_own_words_from_the_same_loader():
    with pytest.raises(UsageError) as caught:
        cli_models.load_model("resnet18", None, num_classes=7)
    assert str(caught.value) == ("--num-classes 7: resnet18's pretrained weights have 1000 "
                                 "classes; give the fine-tuned checkpoint with --weights FILE (or "
                                 "--random-weights for a smoke test)")


def test_a_hostile_checkpoint_is_refused_in_the_librarys_words(tmp_path):
    marker = tmp_path / "marker"
    evil = str(write_hostile_checkpoint(tmp_path / "evil.pt", marker))
    with pytest.raises(LoadError) as caught:
        load_model("resnet18", evil)
    assert str(caught.value).startswith(f"weights={evil!r}: holds pickled Python objects (")
    assert str(caught.value).endswith(LIBRARY_REFUSAL_END) and not marker.exists()


def test_random_weights_and_checkpoints(tmp_path):
    with pytest.warns(UserWarning, match=r"squeezenet1_1 has RANDOM weights "
                                         r"\(random_weights=True\)"):
        random = load_model("squeezenet1_1", None, random_weights=True, num_classes=4)
    assert random.name == "squeezenet1_1 (random weights) (4 classes)"
    torch.save(random.model.state_dict(), tmp_path / "four.pt")
    loaded = load_model("squeezenet1_1", str(tmp_path / "four.pt"))
    assert loaded.name == "squeezenet1_1 (4 classes)" and not loaded.model.training
    for key, value in random.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_offline_the_default_model_falls_back_and_a_named_one_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    monkeypatch.setattr(network, "online", lambda url, timeout=3.0: False)
    bundled = LoadedModel(torch.nn.Linear(2, 2), loading.BUNDLED_MODEL, 224)
    monkeypatch.setattr(loading, "load_bundled", lambda names=loading.PYTHON_NAMES: bundled)
    with pytest.warns(UserWarning, match="using the bundled pretrained efficientnet_lite0"):
        assert load_model(None, None) is bundled
    with pytest.raises(WeightsUnavailable) as caught:
        loading.torchvision_pretrained("resnet18")
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    assert caught.value.url == weights.url
    assert caught.value.file == str(tmp_path / "hub" / "checkpoints" / weights.url.split("/")[-1])
    with pytest.raises(LoadError) as caught:
        load_model("resnet18", None)
    assert str(caught.value).startswith("model='resnet18': resnet18's ImageNet weights are not "
                                        f"in the torch hub cache ({tmp_path / 'hub'}")
    assert str(caught.value).endswith("pass a local file with weights, or use "
                                      "model='efficientnet_lite0'")


def test_options_of_a_command(monkeypatch):
    class Args:
        model, weights = "squeezenet1_1", None

    with pytest.raises(UsageError, match="^--model 'squeezenet1_x': not a torchvision"):
        Args.model = "squeezenet1_x"
        load_from_options(Args())  # type: ignore[arg-type]
    Args.model = "squeezenet1_1"
    monkeypatch.setattr(loading, "torchvision_pretrained",
                        lambda name: LoadedModel(torch.nn.Identity(), name, 224))
    assert load_from_options(Args()).name == "squeezenet1_1"  # type: ignore[arg-type]


def test_online_counts_a_proxy_as_reachable(monkeypatch):
    for key in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    assert network.online("https://127.0.0.1:9/x", timeout=1) is False  # port 9 refuses
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert network.online("https://127.0.0.1:9/x", timeout=1) is True
