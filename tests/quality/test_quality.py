"""Quality: on models trained here, every method's map peaks on the shape
that decides the class.

No pretrained Vision Transformer can be downloaded here, so this file
trains its own two models (the session fixture ``shape_models``, seeded,
trained once per session, about 70 s on two idle CPU cores: 57 s for the
ViT, 14 s for the CNN) on synthetic images
(``pytorch_grad_cam.utils.synthetic_shapes``: a disc, a ring or a cross of
random size, rotation and colour at a random position on clutter that holds
no class shape; 48 x 48 pixels): a small CNN (four convolutions, global
average pooling, one linear head, so that CAM applies; a 12 x 12 feature
map; one shape per image, cross-entropy) and a small torchvision
``VisionTransformer`` (3 blocks, 8 x 8 patches: a 6 x 6 token grid),
trained as a detector of each class (``train(..., multilabel=True)``:
images with no shape, one, or, a few, two of different classes; binary
cross-entropy), so that each class's logit is evidence for its own shape
and no class can be "none of the others". Their held-out accuracy is
asserted, so that a model that did not learn the shapes fails there,
loudly, and not as bad maps later.

The ViT's recipe matters, and so does its seed
(``bench/vit_quality_sweep.py`` trains seeds 2-6 with both recipes and
prints the table). Trained with cross-entropy on one shape per image, every
seed has a class whose LeGrad maps peak off the shape in most of its
images; LeGrad scores 0.14-0.66 and Grad-CAM at the last block's ``ln_1``
0.36-0.78 (gradient-weighted attention 0.83-0.98, rollout 1.00). As
detectors, LeGrad scores 0.52-0.98 and that Grad-CAM 0.47-0.94
(gradient-weighted attention 0.97-1.00, rollout 1.00). This file's seed, 2
(the seed the fixture had before the recipe changed), gives 0.98 and 0.94,
and 0.97 and 0.92-0.94 on two more held-out sets of 256 images. So LeGrad
and that Grad-CAM clear the bar on this model, not on every small ViT:
LeGrad scores each token by the gradient of the class score with respect
to the attention paid to it, not weighted by that attention, and a small
ViT can gain score from attention to background that it does not pay. The
methods that weight the gradient by the attention, or follow the attention
itself, do not depend on that.
AttnLRP (``attnlrp``, the relevance of the input pixels, a map at pixel
resolution) runs here like the attention methods, on every block, and
scores 0.98 on this file's held-out images (63 of 64; LeGrad 1.00 in the
same run).

Grad-ECLIP (``gradeclip``, the class logit in the part of CLIP's
similarity) runs on its default target, the last block, like the other
attention methods on theirs: 0.92 on this model (0.95 with every block,
``target_layers=list(vit.encoder.layers)``), above the class-specific bar.

Scoring: every method explains the same ``HELD_OUT`` held-out images, all
of them (not only those the model gets right: the target is the true
class, and the shape is the only evidence for any class in these images,
so the map should lie on it either way; here both models classify all 64
correctly). An image counts as a hit when the argmax of its map, at
input resolution, lies inside the shape's region (the pixels inside its
outline, for the ring its hole too) dilated by ``DILATION`` = 4 pixels (a
9 x 9 square neighbourhood), half a ViT patch: the argmax of a bilinearly
upsampled coarse map lies at the centre of the cell with the largest
value, which can be half a cell away from the part of the shape that
overlaps that cell. An all-zero map is a miss. The score is the fraction of hits; the chance level (the mean
fraction of the image the dilated regions cover, about 0.26) is asserted
to stay well below the bars.

One test per method, parametrised from the registry, so that a new method
is scored without anyone editing a list:

- the methods that explain any CNN (registry trait ``attention=False``)
  run on the CNN, at its last convolution's ReLU (FullGrad picks its own
  layers); the methods that explain a Vision Transformer's attention
  (``attention=True``) run on the ViT with their default target layers
  (every block); Grad-CAM also runs on the ViT, at the last block's
  ``ln_1`` with ``vit_reshape_transform`` (``vit-gradcam``);
- the target is the true class; class-specific methods must score at
  least ``CLASS_SPECIFIC_BAR`` (0.9), class-agnostic ones (they show what
  the layer sees whatever the class) at least ``CLASS_AGNOSTIC_BAR`` (0.6),
  and so must the black-box methods (registry trait ``black_box``: RISE,
  with its default 1000 masks and 7 x 7 grid): they see the model only
  through the scores of randomly masked copies, so their maps are a
  coarse and noisy estimate (a 48 x 48 image has cells of 7 pixels, the
  size of a small shape);
- the randomised methods (``randomcam``) have no bar (their maps are random
  by design); their score must lie at least ``RANDOM_MARGIN`` below
  Grad-CAM's on the CNN, so that a scoring that passes everything fails.
  (RandomCAM weights the CNN's activations randomly; those are largest on
  the bright shape, so it scores well above chance: 0.61, Grad-CAM 0.98.)

``pytest -s`` prints every method's score and, at the end, the table of
them all; every assertion message has the score too.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, NamedTuple

import pytest
import torch
import torchvision

from pytorch_grad_cam.registry import MethodInfo, get_method, registered_methods
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
from pytorch_grad_cam.utils.synthetic_shapes import (
    CLASSES,
    SmallCNN,
    dilated,
    make_shapes,
    model_input,
    peak_hits,
    train_cnn,
    train_vit,
)

pytestmark = pytest.mark.slow  # trains a small CNN and a small ViT (about 70 s)

#: held-out images every method is scored on
HELD_OUT = 64
#: the seed of the held-out images (the training batches use others)
HELD_OUT_SEED = 20_251
#: pixels by which the shape's region is dilated (see the module docstring)
DILATION = 4
#: the least held-out accuracy each model must reach
MIN_ACCURACY = 0.9
CLASS_SPECIFIC_BAR = 0.9
CLASS_AGNOSTIC_BAR = 0.6
#: how far below Grad-CAM's score a randomised method's must lie
RANDOM_MARGIN = 0.25
#: the chance level must stay below this (else the regions are too large
#: for a hit to mean anything)
MAX_CHANCE = 0.4

#: options that keep the expensive methods affordable on two CPU cores:
#: SSCAM forwards n_samples noisy copies of every masked input (8 instead
#: of its default 35; its map still peaks where Score-CAM's does)
METHOD_OPTIONS: dict[str, dict[str, Any]] = {"sscam": {"n_samples": 8}}

#: cases measured below their bar with these models, kept as strict
#: expected failures with the measured score as the reason (a case that
#: starts passing fails as XPASS: then remove it here); none at present
BELOW_BAR: dict[str, str] = {}


class ShapeModels(NamedTuple):
    cnn: SmallCNN
    vit: torchvision.models.VisionTransformer
    inputs: torch.Tensor  # the held-out images, as the models take them
    labels: torch.Tensor
    regions: torch.Tensor  # N x H x W bool: the shapes' regions, dilated
    chance: float  # the mean fraction of the image the dilated regions cover


@pytest.fixture(scope="session")
def shape_models() -> ShapeModels:
    """The trained CNN and ViT and the held-out images (their accuracies
    and the chance level are asserted here)."""
    with torch.random.fork_rng():
        cnn, cnn_seconds = train_cnn()
        vit, vit_seconds = train_vit()
    data = make_shapes(HELD_OUT, seed=HELD_OUT_SEED)
    inputs = model_input(data.images)
    with torch.no_grad():
        accuracy = {name: float((model(inputs).argmax(dim=1) == data.labels).float().mean())
                    for name, model in (("cnn", cnn), ("vit", vit))}
    regions = dilated(data.regions, DILATION)
    chance = float(regions.float().mean())
    print(f"\n[quality] trained the CNN in {cnn_seconds:.1f} s (held-out accuracy "
          f"{accuracy['cnn']:.3f}) and the ViT in {vit_seconds:.1f} s ({accuracy['vit']:.3f}) "
          f"on {len(CLASSES)} classes ({', '.join(CLASSES)}); chance level {chance:.3f}")
    for name, value in accuracy.items():
        assert value >= MIN_ACCURACY, (
            f"the {name} reaches only {value:.3f} held-out accuracy (at least {MIN_ACCURACY} "
            "expected): it has not learned the shapes, so its maps cannot be judged")
    assert chance <= MAX_CHANCE, (
        f"the dilated shape regions cover {chance:.3f} of the images (at most {MAX_CHANCE} "
        "expected): a peak inside them would mean little")
    return ShapeModels(cnn, vit, inputs, data.labels, regions, chance)


def is_attention(info: MethodInfo) -> bool:
    """Whether the method explains a Vision Transformer's attention."""
    return bool(getattr(info, "attention", False))


class Case(NamedTuple):
    id: str
    info: MethodInfo
    model: str  # "cnn" or "vit"
    bar: float | None  # None for the randomised methods


def _cases() -> list[Case]:
    cases = []
    for info in registered_methods():
        model = "vit" if is_attention(info) else "cnn"
        bar = None if info.randomised else (
            CLASS_SPECIFIC_BAR if info.class_specific and not info.black_box
            else CLASS_AGNOSTIC_BAR)
        cases.append(Case(f"{model}-{info.name}", info, model, bar))
    cases.append(Case("vit-gradcam", get_method("gradcam"), "vit", CLASS_SPECIFIC_BAR))
    return cases


CASES = _cases()
SCORED = [pytest.param(case, id=case.id, marks=[pytest.mark.xfail(
              strict=True, reason=BELOW_BAR[case.id])] if case.id in BELOW_BAR else [])
          for case in CASES if case.bar is not None]
RANDOMISED = [case for case in CASES if case.bar is None]
_SCORES: dict[str, float] = {}
_SECONDS: dict[str, float] = {}


def make_cam(case: Case, models: ShapeModels) -> Any:
    info = case.info
    options = dict(METHOD_OPTIONS.get(info.name, {}))
    if info.extra_passes:
        options.update(progress=False, batch_size=256)
    if case.model == "vit":
        if is_attention(info):
            return info.cls(model=models.vit, **options)  # every block
        return info.cls(model=models.vit, target_layers=[models.vit.encoder.layers[-1].ln_1],
                        reshape_transform=vit_reshape_transform, **options)
    if not info.uses_target_layers:
        return info.cls(model=models.cnn, **options)  # FullGrad: its own layers
    return info.cls(model=models.cnn, target_layers=[models.cnn.features[-1]], **options)


def score(case: Case, models: ShapeModels) -> float:
    """The fraction of held-out images whose map peaks in the shape's
    region (computed once per session)."""
    if case.id not in _SCORES:
        start = time.perf_counter()
        targets = [ClassifierOutputTarget(int(c)) for c in models.labels]
        with warnings.catch_warnings():
            # an all-zero map counts as a miss; its warning adds nothing here
            warnings.simplefilter("ignore", RuntimeWarning)
            with make_cam(case, models) as cam:
                maps = cam(input_tensor=models.inputs, targets=targets)
        assert maps.shape == tuple(models.regions.shape)
        _SCORES[case.id] = float(peak_hits(maps, models.regions).float().mean())
        _SECONDS[case.id] = time.perf_counter() - start
        print(f"\n[quality] {case.id:24s} {_SCORES[case.id]:.3f} ({_SECONDS[case.id]:.1f} s)")
    return _SCORES[case.id]


def teardown_module() -> None:
    if _SCORES:
        bars = {case.id: case.bar for case in CASES}
        rows = "\n".join(
            f"  {name:24s} {value:6.3f}   bar {bars[name] if bars[name] is not None else '-':>4}"
            f"{'   (expected below the bar)' if name in BELOW_BAR else ''}"
            f"   {_SECONDS[name]:5.1f} s"
            for name, value in sorted(_SCORES.items(), key=lambda item: -item[1]))
        print(f"\n[quality] map peak inside the shape, {HELD_OUT} held-out images:\n{rows}")


@pytest.mark.parametrize("case", SCORED)
def test_map_peaks_inside_the_shape(case: Case, shape_models: ShapeModels) -> None:
    assert case.bar is not None
    value = score(case, shape_models)
    kind = "class-specific" if case.info.class_specific else "class-agnostic"
    assert value >= case.bar, (
        f"{case.id}: the map peaks inside the shape for {value:.3f} of the held-out images, "
        f"below the bar {case.bar} of a {kind} method (chance {shape_models.chance:.3f})")


@pytest.mark.parametrize("case", RANDOMISED, ids=[case.id for case in RANDOMISED])
def test_random_baseline_scores_far_below_gradcam(case: Case,
                                                  shape_models: ShapeModels) -> None:
    gradcam = next(c for c in CASES if c.id == "cnn-gradcam")
    random_score, gradcam_score = score(case, shape_models), score(gradcam, shape_models)
    assert random_score <= gradcam_score - RANDOM_MARGIN, (
        f"{case.id} scores {random_score:.3f}, Grad-CAM {gradcam_score:.3f}: a random map "
        f"should lie at least {RANDOM_MARGIN} below Grad-CAM (chance "
        f"{shape_models.chance:.3f})")
