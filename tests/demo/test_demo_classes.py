"""Several classes of one photo in the web demo: the Class box's entries
(``pytorch_grad_cam.demo.classes``), one call per method for all of them,
one overlay per method and class in the page, the maps file and the
metrics of each class; the one-class requests of the HTTP API unchanged."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from demo_helpers import TINY, library_map, photo_rgb, tiny_model

from pytorch_grad_cam.demo.classes import (
    MAX_CLASSES,
    ClassRequest,
    chosen_classes,
    parse_classes,
    top_count,
)
from pytorch_grad_cam.demo.models import IMAGENET_CLASSES, DemoError, DemoModel, ModelStore
from pytorch_grad_cam.demo.request import DropInConfidence, IncreaseInConfidence, explain
from pytorch_grad_cam.utils.image import preprocess_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

NAMES = ("cat", "dog", "cup", "car", "sky")
SCORES = torch.tensor([[0.5, 2.0, -1.0, 3.0, 1.0]])   # best first: car, dog, sky, cat, cup


# ------------------------------------------------------------ the class box
@pytest.mark.parametrize("text, count", [
    ("auto", 1), ("", 1), ("Top class", 1), ("top 3", 3), ("top 3 classes", 3), ("TOP-5", 5),
    ("top 1 class", 1), ("tabby", None), ("281", None), ("top hat (515)", None)])
def test_top_count(text, count):
    assert top_count(text) == count


@pytest.mark.parametrize("value, request_", [
    (None, ClassRequest(1, ())),
    ([], ClassRequest(1, ())),
    ("dog", ClassRequest(0, (1,))),
    (3, ClassRequest(0, (3,))),
    (["top 3"], ClassRequest(3, ())),
    (["auto", "sky (4)", "1", "dog"], ClassRequest(1, (4, 1))),   # dog twice: once
    (["top 2", "top 4", "cup"], ClassRequest(4, (2,))),
])
def test_parse_classes(value, request_):
    assert parse_classes(value, NAMES, 5) == request_


@pytest.mark.parametrize("value, message", [
    ("top 0", "'top 0': choose at least the top 1 class"),
    (["top 6"], "top 6: this model has only 5 classes"),
    (["dog", "kat"], "unknown class 'kat'; close matches: cat (0)"),
    ({"class": 1}, "the class must be a name, an index or a list of them, got dict"),
    ([1.5], "the class must be a name or an index, got 1.5"),
])
def test_parse_classes_errors(value, message):
    with pytest.raises(DemoError) as caught:
        parse_classes(value, NAMES, 5)
    assert str(caught.value) == message


def test_at_most_max_classes():
    names = [f"c{i}" for i in range(20)]
    assert MAX_CLASSES == 10
    with pytest.raises(DemoError) as caught:
        parse_classes(["top 11"], names, 20)
    assert str(caught.value) == "at most 10 classes at once (asked for 11)"
    with pytest.raises(DemoError) as caught:
        parse_classes([str(i) for i in range(11)], names, 20)
    assert str(caught.value) == "at most 10 classes at once (asked for 11)"
    scores = torch.arange(20.0)[None]   # the best: 19, 18, ...
    request = parse_classes(["top 8", "0", "1", "19", "2"], names, 20)
    with pytest.raises(DemoError) as caught:
        chosen_classes(request, scores)
    assert str(caught.value) == ("at most 10 classes at once; the top 8 and the 4 named make "
                                 "11")


def test_chosen_classes_best_first_then_the_named_ones_not_among_them():
    assert chosen_classes(ClassRequest(1, ()), SCORES) == [3]
    assert chosen_classes(ClassRequest(3, (0, 1)), SCORES) == [3, 1, 4, 0]
    assert chosen_classes(ClassRequest(0, (2, 0)), SCORES) == [2, 0]


# ------------------------------------------------------------- the request
def _positive_tiny() -> DemoModel:
    """The tiny model with a positive head: no class has an empty map
    (for which the library would make passes to say why)."""
    model = tiny_model()
    with torch.no_grad():
        model.fc.weight.abs_()
    return DemoModel(model, "positive", layers=("features[-1]",))


@pytest.fixture(scope="module")
def positive_store() -> ModelStore:
    return ModelStore("cpu", extra_models={"positive": _positive_tiny})


def _top(model: torch.nn.Module, rgb: np.ndarray, k: int) -> list[int]:
    """The model's k best classes for the photo, prepared as the demo does."""
    resized = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_LINEAR)
    with torch.no_grad():
        scores = model(preprocess_image(np.float32(resized) / 255))[0]
    return [int(i) for i in torch.argsort(scores, descending=True)[:k]]


def test_top_3_and_a_named_class_are_the_library_maps(store, chelsea_path):
    rgb = photo_rgb(chelsea_path)
    model = tiny_model()
    top3 = _top(model, rgb, 3)
    assert 281 not in top3
    result = explain(chelsea_path, model=TINY, methods=["gradcam", "layercam"],
                     target_class=["top 3", "tabby (281)"], store=store)
    classes = [*top3, 281]
    labels = [f"{IMAGENET_CLASSES[c]} ({c})" for c in classes]
    assert result.categories == tuple(classes) and result.class_labels == tuple(labels)
    assert (result.category, result.class_label) == (classes[0], labels[0])
    assert [(r.method, r.category, r.class_label) for r in result.results] == [
        (method, c, label) for method in ("gradcam", "layercam")
        for c, label in zip(classes, labels)]
    for method in ("gradcam", "layercam"):
        assert result.maps[method].shape == (4, 224, 224)
        for k, c in enumerate(classes):
            expected = library_map(model, model.features[-1], rgb, c, method)
            np.testing.assert_allclose(result.maps[method][k], expected, atol=1e-6,
                                       err_msg=f"{method} {c}")
    assert all(r.overlay.shape == rgb.shape for r in result.results)


def test_one_forward_pass_per_method_for_all_the_classes(positive_store, chelsea_path):
    model = positive_store.get("positive").model
    explain(chelsea_path, model="positive", store=positive_store)  # the layers' check, once
    calls = []
    handle = model.register_forward_hook(lambda module, args, output: calls.append(len(output)))
    try:
        counts = {}
        for classes in ("auto", ["top 5"]):
            calls.clear()
            result = explain(chelsea_path, model="positive", methods=["gradcam", "scorecam"],
                             target_class=classes, store=positive_store)
            counts[len(result.categories)] = list(calls)
    finally:
        handle.remove()
    assert counts[5] == counts[1], counts
    # the prediction, Grad-CAM's pass, Score-CAM's recording pass and its 16 channels' passes
    assert counts[5] == [1, 1, 1, 8, 8]


def test_the_metrics_of_every_class(store, chelsea_path):
    result = explain(chelsea_path, model=TINY, methods=["gradcam", "hirescam"],
                     target_class=["top 2"], metrics=True, store=store)
    model = store.get(TINY).model
    assert result.metrics is not None
    assert [(m.method, m.category) for m in result.metrics] == [
        (r.method, r.category) for r in result.results]
    for row, method in zip(result.metrics, result.results):
        targets = [ClassifierOutputSoftmaxTarget(method.category)]
        cams = method.map[None]
        drop = DropInConfidence(relative=True)(result.input_tensor, cams, targets, model)[0]
        increase = IncreaseInConfidence()(result.input_tensor, cams, targets, model)[0]
        assert row.drop_in_confidence == pytest.approx(float(drop), abs=1e-5)
        assert row.increase_in_confidence == float(increase)


# ----------------------------------------------------------------- the page
gr = pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def page(store):
    from pytorch_grad_cam.demo import app as demo_app

    demo = demo_app.build_demo(store, concurrency=2)
    yield demo
    demo.grad_cam_map_files.close()


@pytest.fixture(scope="module")
def handle(page):
    from pytorch_grad_cam.demo import app as demo_app

    return demo_app.make_handler(page.grad_cam_store, page.grad_cam_map_files)


def test_the_class_box_is_a_multi_select_that_starts_with_the_top_class(page):
    explain_fn = next(f for f in page.fns.values() if f.api_name == "explain")
    box = explain_fn.inputs[3]
    assert box.elem_id == "class" and box.multiselect is True and box.value == ["auto"]
    choices = [tuple(choice) for choice in box.choices]
    assert choices[:4] == [("top class (automatic)", "auto"), ("top 3 classes", "top 3"),
                           ("top 5 classes", "top 5"), ("tench (0)", "0")]


def test_the_handler_shows_each_method_and_class(handle, chelsea_path):
    rgb = photo_rgb(chelsea_path)
    top2 = _top(tiny_model(), rgb, 2)
    labels = [f"{IMAGENET_CLASSES[c]} ({c})" for c in [*top2, 281]]
    gallery, _, table, maps_path, status = handle(
        {"path": str(chelsea_path)}, TINY, ["gradcam", "layercam"], ["top 2", "tabby"], "", True)
    assert [caption for _, caption in gallery] == [
        f"{title}: {label}" for title in ("GradCAM", "LayerCAM") for label in labels]
    assert all(image.shape == rgb.shape for image, _ in gallery)
    assert status.startswith(f"Explained **{labels[0]}**, **{labels[1]}**, **{labels[2]}** "
                             "with GradCAM, LayerCAM on `tiny`")
    assert table.visible is True and table.headers == [
        "method", "class", "DropInConfidence (lower is better)",
        "IncreaseInConfidence (higher is better)"]
    assert [row[:2] for row in table.value["data"]] == [
        [method, label] for method in ("gradcam", "layercam") for label in labels]
    with np.load(maps_path) as saved:
        assert set(saved.files) == {"gradcam", "layercam", "category", "top5", "categories"}
        assert saved["categories"].tolist() == [*top2, 281] and int(saved["category"]) == top2[0]
        assert saved["gradcam"].shape == (3, 224, 224)
        model = tiny_model()
        np.testing.assert_allclose(saved["layercam"][2],
                                   library_map(model, model.features[-1], rgb, 281, "layercam"),
                                   atol=1e-6)


def test_one_class_keeps_the_maps_file_and_the_table(handle, chelsea_path):
    _, _, table, maps_path, status = handle(str(chelsea_path), TINY, ["gradcam"], ["281"], "",
                                            True)
    assert status.startswith("Explained **tabby (281)** with GradCAM on `tiny`")
    assert table.headers == ["method", "DropInConfidence (lower is better)",
                             "IncreaseInConfidence (higher is better)"]
    with np.load(maps_path) as saved:
        assert set(saved.files) == {"gradcam", "category", "top5"}
        assert saved["gradcam"].shape == (224, 224) and int(saved["category"]) == 281


def test_too_many_classes_is_a_message_in_the_page(handle, chelsea_path):
    with pytest.raises(gr.Error) as caught:
        handle(str(chelsea_path), TINY, ["gradcam"], ["top 12"], "", False)
    assert caught.value.message == "at most 10 classes at once (asked for 12)"
