"""The demo keeps one CAM object per model, method and target layers
(``ModelStore.explainer``), shared by the requests: it is built once, even
when the first requests come together, each request still gets the map a
fresh object gives, and the model is left as it was (no hooks, eval mode,
its parameters' ``requires_grad``)."""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
import torch
from demo_helpers import TINY, library_map, photo_rgb, run_in_threads, tiny_demo_model

from pytorch_grad_cam.demo.models import ModelStore
from pytorch_grad_cam.demo.request import explain
from pytorch_grad_cam.registry import get_method

METHODS = ("gradcam", "layercam", "hirescam")


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many CAM objects of each of METHODS were constructed."""
    counts: Counter = Counter()
    for name in METHODS:
        cls = get_method(name).cls
        original = cls.__init__

        def counting(self: Any, *args: Any, __original: Any = original, __name: str = name,
                     **kwargs: Any) -> None:
            counts[__name] += 1
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    return counts


@pytest.fixture
def fresh_store() -> ModelStore:
    return ModelStore("cpu", extra_models={TINY: tiny_demo_model, "other": tiny_demo_model},
                      capacity=1)


def _no_hooks(model: torch.nn.Module) -> dict[str, int]:
    """Module name -> hooks registered on it, for the modules that have any."""
    found = {}
    for name, module in model.named_modules():
        count = sum(len(getattr(module, attribute)) for attribute in (
            "_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
            "_backward_pre_hooks", "_state_dict_hooks"))
        if count:
            found[name or "<model>"] = count
    return found


def test_two_requests_share_one_cam_object_and_get_the_fresh_objects_map(
        fresh_store, built, chelsea_path):
    rgb = photo_rgb(chelsea_path)
    first = explain(rgb, model=TINY, methods=["gradcam"], target_class=281, store=fresh_store)
    second = explain(rgb, model=TINY, methods=["gradcam"], target_class=281, store=fresh_store)
    assert built == {"gradcam": 1}
    loaded = fresh_store.get(TINY)
    layers = fresh_store.target_layers(loaded)
    info = get_method("gradcam")
    shared = fresh_store.explainer(loaded, info, layers)
    assert fresh_store.explainer(loaded, info, layers) is shared and built == {"gradcam": 1}
    assert shared.model is loaded.model and shared.target_layers == [loaded.model.features[-1]]
    expected = library_map(loaded.model, loaded.model.features[-1], rgb, 281)  # a fresh object
    np.testing.assert_allclose(first.maps["gradcam"], expected, atol=1e-6)
    np.testing.assert_array_equal(second.maps["gradcam"], first.maps["gradcam"])
    assert expected.max() > 0.5 and expected.std() > 0.05  # a real map
    # another layer is another object; the first stays
    built.clear()
    explain(rgb, model=TINY, methods=["gradcam"], layer="features[1]", store=fresh_store)
    assert built == {"gradcam": 1}
    assert fresh_store.explainer(loaded, info, layers) is shared


def test_concurrent_requests_build_each_object_once_and_get_their_own_maps(
        fresh_store, built, chelsea_path):
    rgb = photo_rgb(chelsea_path)
    classes = [3, 281, 600, 900]
    loaded = fresh_store.get(TINY)
    alone = {(name, c): library_map(loaded.model, loaded.model.features[-1], rgb, c, name)
             for name in METHODS for c in classes}
    built.clear()
    got: dict[tuple[str, int, int], np.ndarray] = {}

    def work(category: int) -> None:
        for repeat in range(2):
            result = explain(rgb, model=TINY, methods=list(METHODS), target_class=category,
                             store=fresh_store)
            for name in METHODS:
                got[name, category, repeat] = result.maps[name]

    run_in_threads(work, classes, timeout=120)
    assert built == dict.fromkeys(METHODS, 1)
    assert len(got) == len(METHODS) * len(classes) * 2
    for (name, category, _), cam in got.items():
        np.testing.assert_allclose(cam, alone[name, category], atol=1e-6,
                                   err_msg=f"{name}, class {category}")


def test_the_model_is_left_as_it_was_after_requests_and_failures(fresh_store, chelsea_path):
    loaded = fresh_store.get(TINY)
    model = loaded.model
    frozen = model.features[0].weight
    frozen.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rgb = photo_rgb(chelsea_path)
    for _ in range(2):
        result = explain(rgb, model=TINY, methods=["gradcam", "scorecam", "legrad"],
                         target_class=281, store=fresh_store)
        assert [r.method for r in result.results] == ["gradcam", "scorecam"]
        assert "legrad" in result.failures  # an attention method on a CNN: reported, not run
        assert _no_hooks(model) == {}
    assert not model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_the_objects_go_with_their_model(fresh_store, built, chelsea_path):
    rgb = photo_rgb(chelsea_path)
    explain(rgb, model=TINY, store=fresh_store)
    first = fresh_store.get(TINY)
    info = get_method("gradcam")
    kept = fresh_store.explainer(first, info, fresh_store.target_layers(first))
    explain(rgb, model="other", store=fresh_store)  # capacity 1: TINY is dropped
    assert fresh_store.loaded_names() == ["other"]
    assert built == {"gradcam": 2}
    # a request that still holds the dropped model gets an object that is not kept
    again = fresh_store.explainer(first, info, fresh_store.target_layers(first))
    assert again is not kept and again.model is first.model
    assert fresh_store.explainer(first, info, fresh_store.target_layers(first)) is not again
    assert built == {"gradcam": 4}
    reloaded = fresh_store.get(TINY)
    assert reloaded.model is not first.model
    explain(rgb, model=TINY, store=fresh_store)
    assert fresh_store.explainer(reloaded, info, fresh_store.target_layers(reloaded)).model \
        is reloaded.model
    assert built == {"gradcam": 5}
