"""One CAM object called from several threads at once: every call gets the
map it gets alone, and ``cam.outputs`` (and AblationCAM's report of how
its copies ran) is, in each thread, what that thread's own last call left.

A CAM object keeps nothing of a call: the recorded activations, the
model's outputs while a call runs and a method's intermediate results live
in the call's context; what a caller may read after a call is kept per
thread. The methods come from the registry (every method for CNNs), so a
new method is checked without editing a list.
"""
import inspect
import threading

import numpy as np
import pytest
import torch
from registry_cases import REGISTRY_PARAMS  # tests/registry_cases.py
from torch import nn
from vit_cases import VIT_CASES  # tests/vit_cases.py

from pytorch_grad_cam import AblationCAM, ActivationsAndGradients, BaseCAM, GradCAM
from pytorch_grad_cam.attention_cam import AttentionCAM
from pytorch_grad_cam.registry import get_method
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

THREADS, CALLS = 4, 20
#: fewer samples for the methods that take many per channel or image
FEW_SAMPLES = {"n_samples": 3, "num_samples": 3}


def tiny_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    with torch.no_grad():
        model[2].bias.fill_(0.1)
    return model.eval()


def make(name, model):
    info = get_method(name)
    parameters = inspect.signature(info.cls.__init__).parameters
    kwargs = {key: value for key, value in FEW_SAMPLES.items() if key in parameters}
    if info.uses_target_layers:
        kwargs["target_layers"] = [model[3]]  # pooled into the classifier (CAM reads it)
    return info.cls(model=model, progress=False, batch_size=4, **kwargs)


def inputs(thread, size=10):
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(100 + thread))


def targets(thread):
    return [ClassifierOutputTarget(thread % 5), ClassifierOutputTarget((thread + 2) % 5)]


def run_threads(work):
    """Run work(thread) in THREADS threads started together; re-raise the
    first error of any of them."""
    errors = []
    start = threading.Barrier(THREADS)

    def body(thread):
        try:
            start.wait(30)
            work(thread)
        except BaseException as error:  # reported below, with its thread
            errors.append((thread, error))

    workers = [threading.Thread(target=body, args=(i,), name=f"cam-{i}") for i in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
        assert not worker.is_alive(), "a thread did not finish in 300 s"
    if errors:
        thread, error = errors[0]
        raise AssertionError(f"thread {thread} failed ({len(errors)} of {THREADS} did)") \
            from error


def check_shared_by_threads(name, cam, size, aug_smooth):
    """THREADS threads call ``cam`` CALLS times each, with their own
    images and targets: every map equals the map of a single call, and
    each thread's ``cam.outputs`` is its own last call's."""
    expected, expected_outputs = [], []
    for thread in range(THREADS):  # the maps and outputs of single calls
        expected.append(cam(inputs(thread, size), targets(thread), aug_smooth=aug_smooth))
        expected_outputs.append(cam.outputs.clone())
    # the threads' maps differ: a call that got another thread's activations could not pass
    assert all(not np.allclose(expected[0], expected[i], atol=1e-3) for i in range(1, THREADS))
    got = {thread: [] for thread in range(THREADS)}
    outputs = {}

    def work(thread):
        x, chosen = inputs(thread, size), targets(thread)
        for _ in range(CALLS):
            got[thread].append(cam(x, chosen, aug_smooth=aug_smooth))
        outputs[thread] = cam.outputs  # this thread's last call

    run_threads(work)
    for thread in range(THREADS):
        assert len(got[thread]) == CALLS
        for maps in got[thread]:
            np.testing.assert_allclose(maps, expected[thread], rtol=0, atol=1e-6,
                                       err_msg=f"{name}, thread {thread}")
        torch.testing.assert_close(outputs[thread], expected_outputs[thread], rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a map may be all zeros
@pytest.mark.parametrize("aug_smooth", [False, True], ids=["plain", "aug_smooth"])
@pytest.mark.parametrize("name", REGISTRY_PARAMS["method_name"])
def test_one_cam_object_shared_by_threads(name, aug_smooth):
    if aug_smooth and get_method(name).perturbation:
        pytest.skip("aug_smooth of a perturbation method: covered by the gradient methods")
    model = tiny_cnn()
    check_shared_by_threads(name, make(name, model), 10, aug_smooth)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a map may be all zeros
@pytest.mark.parametrize("family", ["torchvision", "timm"])
@pytest.mark.parametrize("name", REGISTRY_PARAMS["attention_method"])
def test_one_attention_cam_object_shared_by_threads(name, family):
    vit = VIT_CASES[family]
    cam = get_method(name).cls(vit.build(), output_selector=vit.output_selector)
    check_shared_by_threads(name, cam, 32, False)


def _state(obj, seen=None):
    """What an object holds, by attribute: (name, identity, repr of small
    values); the recorder of a CAM is looked into too."""
    state = {}
    for key, value in sorted(vars(obj).items()):
        plain = isinstance(value, (bool, int, float, str, type(None)))
        state[key] = (id(value), repr(value) if plain else None)
        if isinstance(value, ActivationsAndGradients):
            state[key] += (_state(value),)
    return state


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a map may be all zeros
@pytest.mark.parametrize("name", REGISTRY_PARAMS["any_method"])
def test_a_call_leaves_the_cam_object_as_it_found_it(name):
    """No attribute of the CAM object (or of its recorder) is set or
    replaced by a call, whatever the method: nothing of a call is kept
    for another call to read (the once-per-object empty-map warning
    aside)."""
    if get_method(name).attention:
        vit = VIT_CASES["torchvision"]
        cam, size = get_method(name).cls(vit.build(), output_selector=vit.output_selector), 32
    else:
        cam, size = make(name, tiny_cnn()), 10
    cam._warned_empty = True  # the documented once-per-object warning, not state of a call
    before = _state(cam)
    cam(inputs(0, size), targets(0))
    cam(inputs(1, size), targets(1), aug_smooth=not get_method(name).perturbation)
    assert _state(cam) == before


def test_the_recorder_keeps_nothing_of_a_forward_pass():
    """Each ``record()`` yields the pass's own recording; the recorder's
    ``activations`` are only those of a call of the recorder itself
    (``recorder(x)``, the API of earlier releases)."""
    model = tiny_cnn()
    recorder = ActivationsAndGradients(model, [model[1]])
    x0, x1 = inputs(0), inputs(1)
    with recorder.record() as first:
        model(x0)
    with recorder.record(track_gradients=False) as second:
        model(x1)
    assert first is not second and first is not recorder
    with torch.no_grad():
        torch.testing.assert_close(first.activations[0], model[1](model[0](x0)))
        torch.testing.assert_close(second.activations[0], model[1](model[0](x1)))
    assert first.call_counts == second.call_counts == [1]
    assert recorder.activations == [None] and recorder.gradients == [None]
    output = recorder(x0)
    with torch.no_grad():
        torch.testing.assert_close(output, model(x0))
        torch.testing.assert_close(recorder.activations[0], model[1](model[0](x0)))
    assert recorder.call_counts == [1] and recorder.gradients == [None]
    recorder.release()
    assert recorder.activations == [None] and recorder.call_counts == [0]


def test_attention_cams_take_the_call_arguments_by_name():
    """AttentionCAM's call has BaseCAM's parameters (eigen_smooth among
    them, refused by name or by position)."""
    assert list(inspect.signature(AttentionCAM.__call__).parameters) == \
        list(inspect.signature(BaseCAM.__call__).parameters)
    vit = VIT_CASES["torchvision"]
    cam = get_method("legrad").cls(vit.build())
    for call in (lambda: cam(inputs(0, 32), None, False, True),
                 lambda: cam(inputs(0, 32), eigen_smooth=True)):
        with pytest.raises(ValueError, match=r"^eigen_smooth=True: LeGrad makes its map from "
                                             r"attention probabilities, it has no channels to "
                                             r"project; leave eigen_smooth out \(aug_smooth=True "
                                             r"works\)$"):
            call()


def test_what_a_call_reports_is_kept_per_thread():
    """``cam.outputs`` and AblationCAM's ``ablation_mode``,
    ``used_prefix_once``, ``last_chunk_size`` and ``fallback_reason`` are
    those of the calling thread's last call: None in a thread that has
    made no call, whatever other threads did."""
    model = tiny_cnn()
    cam = AblationCAM(model, [model[3]], progress=False, batch_size=4)
    reports = ("ablation_mode", "used_prefix_once", "last_chunk_size", "fallback_reason")
    assert cam.outputs is None and all(getattr(cam, key) is None for key in reports)
    cam(inputs(0), targets(0))
    mine = {key: getattr(cam, key) for key in reports}
    assert mine["ablation_mode"] == "prefix" and mine["used_prefix_once"] is True
    assert mine["last_chunk_size"] >= 4 and mine["fallback_reason"] is None
    seen = {}

    def other():
        seen["before"] = (cam.outputs, {key: getattr(cam, key) for key in reports})
        cam(inputs(1), targets(1))
        seen["after"] = (cam.outputs.clone(), {key: getattr(cam, key) for key in reports})

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    assert seen["before"] == (None, dict.fromkeys(reports))
    assert seen["after"][1] == mine
    with torch.no_grad():
        assert torch.equal(seen["after"][0], model(inputs(1)))
        # this thread's outputs are still its own call's
        assert torch.equal(cam.outputs, model(inputs(0)))
    assert {key: getattr(cam, key) for key in reports} == mine


def test_a_thread_that_sets_outputs_sees_its_own_value():
    """``cam.outputs`` is an attribute per thread, also when set by hand."""
    model = tiny_cnn()
    cam = GradCAM(model, [model[3]])
    cam.outputs = "main"
    seen = []

    def other():
        seen.append(cam.outputs)
        cam.outputs = "other"
        seen.append(cam.outputs)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(30)
    assert seen == [None, "other"] and cam.outputs == "main"
