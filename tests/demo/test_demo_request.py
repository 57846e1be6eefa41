"""The demo's request function (``pytorch_grad_cam.demo.request.explain``):
its maps are the library's maps, and every bad input gets a message."""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from demo_helpers import TINY, library_map, photo_rgb, run_in_threads, top_class
from hostile_inputs import deadline, png_bomb, special_folder
from PIL import Image

from pytorch_grad_cam.demo import models as demo_models
from pytorch_grad_cam.demo.models import DemoError, DemoModel, ModelStore
from pytorch_grad_cam.demo.request import (
    DropInConfidence,
    IncreaseInConfidence,
    explain,
    method_choices,
    read_image,
    resolve_class,
)
from pytorch_grad_cam.models import network
from pytorch_grad_cam.registry import METHODS, registered_methods
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

BUNDLED = "efficientnet_lite0"
TABBY, EGYPTIAN_CAT = 281, 285


@pytest.fixture(scope="module")
def lite0(store: ModelStore) -> DemoModel:
    return store.get(BUNDLED)


def test_gradcam_map_is_the_library_map(store, lite0, chelsea_path):
    result = explain(chelsea_path, methods=["gradcam"], store=store)
    rgb = photo_rgb(chelsea_path)
    category = top_class(lite0.model, rgb)
    assert result.category == category
    assert result.predictions[0].index == category
    assert category in (TABBY, EGYPTIAN_CAT)  # the pretrained model sees the cat
    expected = library_map(lite0.model, lite0.model.head_activation, rgb, category)
    assert result.maps["gradcam"].shape == (224, 224)
    np.testing.assert_allclose(result.maps["gradcam"], expected, atol=1e-6)
    assert expected.max() > 0.5 and expected.std() > 0.05  # a real map, not a blank one
    assert result.layers == ("head_activation",)
    overlay = result.results[0].overlay
    assert overlay.shape == rgb.shape and overlay.dtype == np.uint8
    assert np.abs(overlay.astype(int) - rgb.astype(int)).mean() > 20
    probabilities = [p.probability for p in result.predictions]
    assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) <= 1.0 + 1e-6


def test_several_methods_side_by_side_for_a_named_class(store, lite0, chelsea_path):
    methods = ["gradcam", "layercam", "hirescam"]
    result = explain(chelsea_path, methods=methods, target_class="tabby", store=store)
    assert result.category == TABBY and result.class_label == "tabby (281)"
    assert [r.method for r in result.results] == methods
    rgb = photo_rgb(chelsea_path)
    for name in methods:
        expected = library_map(lite0.model, lite0.model.head_activation, rgb, TABBY, name)
        np.testing.assert_allclose(result.maps[name], expected, atol=1e-6, err_msg=name)
    assert not np.allclose(result.maps["gradcam"], result.maps["layercam"])


def test_a_layer_path_is_explained(store, lite0, chelsea_path):
    result = explain(chelsea_path, layer="net._blocks[-1]", target_class=TABBY, store=store)
    assert result.layers == ("net._blocks[-1]",)
    expected = library_map(lite0.model, lite0.model.net._blocks[-1], photo_rgb(chelsea_path), TABBY)
    np.testing.assert_allclose(result.maps["gradcam"], expected, atol=1e-6)


def test_an_array_gives_the_same_map_as_its_file(store, chelsea_path):
    from_file = explain(chelsea_path, model=TINY, store=store)
    from_array = explain(photo_rgb(chelsea_path), model=TINY, store=store)
    np.testing.assert_array_equal(from_file.maps["gradcam"], from_array.maps["gradcam"])


def test_metrics_are_the_library_metrics_of_each_map(store, lite0, chelsea_path):
    result = explain(chelsea_path, methods=["gradcam", "layercam"], metrics=True, store=store)
    assert result.metrics is not None and [m.method for m in result.metrics] == ["gradcam",
                                                                                 "layercam"]
    targets = [ClassifierOutputSoftmaxTarget(result.category)]
    for row, method in zip(result.metrics, result.results):
        cams = method.map[None]
        drop = DropInConfidence(relative=True)(result.input_tensor, cams, targets, lite0.model)[0]
        increase = IncreaseInConfidence()(result.input_tensor, cams, targets, lite0.model)[0]
        assert row.drop_in_confidence == pytest.approx(float(drop), abs=1e-6)
        assert row.increase_in_confidence == float(increase)
        assert 0.0 <= row.drop_in_confidence <= 1.0
    assert explain(chelsea_path, model=TINY, store=store).metrics is None


def test_concurrent_requests_get_their_own_maps(store, chelsea_path):
    rgb = photo_rgb(chelsea_path)
    classes = [3, 300, 600, 900]
    alone = {c: explain(rgb, model=TINY, target_class=c, store=store).maps["gradcam"]
             for c in classes}
    got: dict[tuple[int, int], np.ndarray] = {}

    def work(category: int) -> None:
        for repeat in range(3):
            got[category, repeat] = explain(rgb, model=TINY, target_class=category,
                                            store=store).maps["gradcam"]

    run_in_threads(work, classes, timeout=60)
    assert len(got) == len(classes) * 3
    for (category, _), cam in got.items():
        np.testing.assert_allclose(cam, alone[category], atol=1e-6)


# ------------------------------------------------------------ the class box
@pytest.mark.parametrize("text", ["281", "tabby", "Tabby", "tabby (281)", 281, " tabby "])
def test_class_by_name_index_or_label(store, lite0, text):
    names = store.target_layers(lite0).class_names
    assert resolve_class(text, names, 1000) == TABBY


@pytest.mark.parametrize("text", [None, "", "auto", "top class (automatic)"])
def test_top_class_by_default(text):
    assert resolve_class(text, None, 1000) is None


@pytest.mark.parametrize("text, offered", [
    ("tabby kat", "tabby (281)"),
    ("egyptian kat", "Egyptian cat (285)"),
    ("persian", "Persian cat (283)"),
])
def test_unknown_class_name_offers_close_matches(store, chelsea_path, text, offered):
    with pytest.raises(DemoError, match="unknown class") as caught:
        explain(chelsea_path, target_class=text, store=store)
    assert "close matches" in str(caught.value) and offered in str(caught.value)


def test_class_errors_name_the_problem():
    from pytorch_grad_cam.demo.models import IMAGENET_CLASSES

    with pytest.raises(DemoError, match="ambiguous: crane \\(0\\), Crane \\(2\\)"):
        resolve_class("crane", ["crane", "heron", "Crane"], 3)
    with pytest.raises(DemoError, match="class 1000: out of range; this model has 1000"):
        resolve_class("1000", IMAGENET_CLASSES, 1000)
    with pytest.raises(DemoError, match="no class name is close"):
        resolve_class("qqqqzzzz", IMAGENET_CLASSES, 1000)
    with pytest.raises(DemoError, match="classes have no names; give the class index"):
        resolve_class("tabby", None, 10)


# ----------------------------------------------------------- bad photos
def test_a_file_that_is_not_an_image(store, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("this is not a photo\n")
    with pytest.raises(DemoError, match="'notes.jpg' is not an image this demo can read"):
        explain(fake, store=store)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DemoError, match="'empty.png' is not an image"):
        explain(empty, store=store)


def test_a_truncated_photo(store, chelsea_path, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(chelsea_path.read_bytes()[:3000])
    with pytest.raises(DemoError, match="'broken.jpg' could not be read"):
        explain(broken, store=store)


def test_a_missing_photo(store, tmp_path):
    with pytest.raises(DemoError, match="no photo at 'gone.jpg'"):
        explain(tmp_path / "gone.jpg", store=store)


def test_a_huge_photo_is_downscaled_and_says_so(store, tmp_path):
    picture = np.full((4000, 6000, 3), 128, dtype=np.uint8)
    picture[..., 0] = np.linspace(0, 255, 4000, dtype=np.uint8)[:, None]
    picture[..., 1] = np.linspace(0, 255, 6000, dtype=np.uint8)[None, :]
    path = tmp_path / "huge.jpg"
    Image.fromarray(picture).save(path, quality=80)
    result = explain(path, model=TINY, store=store)
    height, width = result.image.shape[:2]
    assert height * width <= 4_000_000 and abs(width / height - 1.5) < 0.01
    assert len(result.notes) == 1
    assert result.notes[0].startswith("The photo (6000 x 4000, 24.0 megapixels) was downscaled "
                                      f"to {width} x {height} (the limit is 4.0 megapixels)")


def test_the_pixel_limit_applies_and_the_map_is_of_the_downscaled_photo(store, lite0,
                                                                        chelsea_path):
    result = explain(chelsea_path, max_pixels=20_000, store=store)
    height, width = result.image.shape[:2]
    assert height * width <= 20_000 and "downscaled" in result.notes[0]
    expected = library_map(lite0.model, lite0.model.head_activation, result.image,
                           result.category)
    np.testing.assert_allclose(result.maps["gradcam"], expected, atol=1e-6)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (and whose data is empty)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_photo_too_large_to_read_is_refused_before_decoding(store, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(12_000, 12_000))  # 144 megapixels
    with pytest.raises(DemoError, match="too large"):
        explain(bomb, store=store)
    with pytest.raises(DemoError, match="too large"):
        read_image(bomb)


def test_the_exact_size_of_a_bomb_is_said_and_nothing_is_decoded(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png")  # 47 KB, 400 megapixels
    with pytest.raises(DemoError) as caught:
        read_image(bomb)
    assert str(caught.value) == ("'bomb.png' is too large: 20000 x 20000 is 400 megapixels, and "
                                 "the demo reads photos of up to 80 megapixels; downscale it "
                                 "first")


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes and /dev")
@pytest.mark.parametrize("name, reason", [
    ("pipe.png", "a named pipe, not a regular file"),
    ("zero.png", "a character device (/dev/zero), not a regular file"),
])
def test_a_pipe_or_a_device_is_refused_without_waiting(tmp_path, name, reason):
    folder = special_folder(tmp_path / "photos")
    with deadline(30), pytest.raises(DemoError) as caught:
        read_image(folder / name)
    assert str(caught.value) == f"{name!r}: {reason}"


# ------------------------------------------------------------ bad choices
def test_unknown_model_offers_close_names(store, chelsea_path):
    with pytest.raises(DemoError, match="unknown model 'resnet5'.*did you mean resnet50"):
        explain(chelsea_path, model="resnet5", store=store)


def test_unknown_timm_model(store, chelsea_path):
    pytest.importorskip("timm")
    with pytest.raises(DemoError, match="timm:resnet5000: timm has no model of that name"):
        explain(chelsea_path, model="timm:resnet5000", store=store)


def test_missing_torchvision_weights_say_what_to_do(store, chelsea_path, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    monkeypatch.setattr(network, "online", lambda url, timeout=3.0: False)
    with pytest.raises(DemoError) as caught:
        explain(chelsea_path, model="resnet18", store=store)
    message = str(caught.value)
    assert message.startswith("model resnet18: resnet18's ImageNet weights are not in the torch "
                              f"hub cache ({tmp_path}")
    assert "choose efficientnet_lite0, the bundled model that works offline" in message
    assert "resnet18" not in store.loaded_names()


def test_missing_timm_weights_say_what_to_do(store, chelsea_path, monkeypatch):
    pytest.importorskip("timm")
    monkeypatch.setattr(network, "online", lambda url, timeout=3.0: False)
    monkeypatch.setattr(demo_models, "_hf_cached_weights", lambda repo_id: None)
    with pytest.raises(DemoError, match="timm:resnet18: its pretrained weights are not in the "
                                        "Hugging Face cache and the network is unreachable"):
        explain(chelsea_path, model="timm:resnet18", store=store)


def test_a_bad_layer_path_offers_close_names(store, chelsea_path):
    with pytest.raises(DemoError, match="layer 'net._conv_hed'.*did you mean _conv_head"):
        explain(chelsea_path, layer="net._conv_hed", store=store)
    with pytest.raises(DemoError, match="layer 'layer4\\[-1\\]'.*has no layer 'layer4'"):
        explain(chelsea_path, layer="layer4[-1]", store=store)


def test_a_model_without_a_default_layer_asks_for_one(chelsea_path):
    class Odd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU())
            self.head = torch.nn.Linear(4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x).mean((2, 3)))

    odd_store = ModelStore("cpu", extra_models={"odd": Odd})
    with pytest.raises(DemoError, match="no default target layer for a Odd; type a layer path "
                                        "in the Layer box \\(its top-level layers: body, head\\)"):
        explain(chelsea_path, model="odd", store=odd_store)
    result = explain(chelsea_path, model="odd", layer="body", store=odd_store)
    assert result.layers == ("body",) and result.class_label == f"class {result.category} " \
                                                                 f"({result.category})"


def test_unknown_or_no_method(store, chelsea_path):
    with pytest.raises(DemoError, match="unknown method 'gradcma'; did you mean gradcam"):
        explain(chelsea_path, methods=["gradcma"], store=store)
    with pytest.raises(DemoError, match="choose at least one method"):
        explain(chelsea_path, methods=[], store=store)


def test_a_method_that_cannot_explain_the_layer_is_reported(store, chelsea_path):
    # CAM needs the layer to feed the final nn.Linear through global pooling; on the first
    # block of the tiny model (8 channels for a 16-input head) it cannot run, and says why,
    # while GradCAM still does
    result = explain(chelsea_path, model=TINY, methods=["gradcam", "cam"], layer="features[0]",
                     store=store)
    assert set(result.maps) == {"gradcam"}
    assert "in_features=16 but the target layer has 8 channels" in result.failures["cam"]
    with pytest.raises(DemoError, match="no method could explain this model and layer "
                                        "\\(cam: CAM: the classifier Linear"):
        explain(chelsea_path, model=TINY, methods=["cam"], layer="features[0]", store=store)


def test_an_attention_method_on_a_cnn_is_a_failure_the_page_shows(chelsea_path, store):
    result = explain(chelsea_path, model=TINY, methods=["gradcam", "legrad"], store=store)
    assert set(result.maps) == {"gradcam"}
    assert "is not and does not contain a Vision Transformer" in result.failures["legrad"]


def test_every_registered_method_is_offered_and_the_costly_ones_marked():
    values = [value for _, value in method_choices()]
    assert values == list(METHODS)
    labels = {value: label for label, value in method_choices()}
    for info in registered_methods():
        if info.attention:
            assert labels[info.name].endswith("(Vision Transformers)")
        elif info.sampling:
            assert labels[info.name].endswith("(very slow)")
        elif info.perturbation:
            assert labels[info.name].endswith("(slow)")
        else:
            assert "slow" not in labels[info.name]


def test_the_library_never_imports_the_demo():
    import subprocess
    import sys

    code = ("import sys, pytorch_grad_cam, pytorch_grad_cam.layers, pytorch_grad_cam.metrics; "
            "print(sorted(m for m in sys.modules if m.startswith('pytorch_grad_cam.demo'))); "
            "import pytorch_grad_cam.cli; print('gradio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "False"]  # nor does the command line load Gradio


def test_a_vision_transformer_gets_its_family_layer_and_token_layout(chelsea_path):
    timm = pytest.importorskip("timm")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.layers import reshape_transform_for
    from pytorch_grad_cam.utils.image import preprocess_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    vit_store = ModelStore("cpu", extra_models={"vit": lambda: vit})
    result = explain(chelsea_path, model="vit", target_class=TABBY, store=vit_store)
    assert result.layers == ("blocks[-1].norm1",)
    resized = cv2.resize(photo_rgb(chelsea_path), (224, 224), interpolation=cv2.INTER_LINEAR)
    with GradCAM(vit, [vit.blocks[-1].norm1],
                 reshape_transform=reshape_transform_for(vit, "vit")) as cam:
        expected = cam(preprocess_image(np.float32(resized) / 255),
                       targets=[ClassifierOutputTarget(TABBY)])[0]
    np.testing.assert_allclose(result.maps["gradcam"], expected, atol=1e-6)
