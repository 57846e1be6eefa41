"""Compare CAM methods on a batch with every metric of the library.

For example::

    from pytorch_grad_cam import GradCAM, ScoreCAM
    from pytorch_grad_cam.metrics.evaluate import evaluate_cam_methods, format_table

    rows = evaluate_cam_methods(model, [model.layer4[-1]], input_tensor,
                                methods=[GradCAM, ScoreCAM])
    print(format_table(rows))
"""
from collections.abc import Callable, Sequence

import numpy as np
import torch

from pytorch_grad_cam.attention import find_transformer
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.metric_names import METRICS, OPT_IN_METRICS, REGION_METRICS, SANITY_CHECKS
from pytorch_grad_cam.metrics._common import Maps
from pytorch_grad_cam.metrics.arcc import Coherency, Complexity, arcc_from_parts
from pytorch_grad_cam.metrics.cam_mult_image import multiply_tensor_with_cam
from pytorch_grad_cam.metrics.deletion_insertion import DeletionAUC, InsertionAUC
from pytorch_grad_cam.metrics.faithfulness_correlation import FaithfulnessCorrelation
from pytorch_grad_cam.metrics.perturbation_confidence import Percentile, original_scores, run_perturbations
from pytorch_grad_cam.metrics.pointing_game import EnergyPointingGame, PointingGame, Regions, region_masks
from pytorch_grad_cam.metrics.relevance_accuracy import RelevanceMassAccuracy, RelevanceRankAccuracy
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
from pytorch_grad_cam.metrics.sanity import SANITY_THRESHOLDS, passes, sanity_values
from pytorch_grad_cam.metrics.sparseness import EntropyComplexity, Sparseness
from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.registry import METHODS, get_method, method_info
from pytorch_grad_cam.scoring import (
    batch_size_or_default,
    check_model,
    check_positive_int,
    check_targets,
    prepare_input,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

_NEED_REGIONS = REGION_METRICS
#: FaithfulnessCorrelation's runs and pixels per subset (Quantus's defaults; a
#: quarter of the pixels for images of fewer than 4 x 224 pixels)
FAITHFULNESS_RUNS, FAITHFULNESS_SUBSET = 100, 224


def _reads_attention(method: type) -> bool:
    """A method of the registry's ``attention`` trait (or a subclass of one)."""
    try:
        return method_info(method).attention
    except KeyError:
        return False


def _method_entries(methods: Sequence[type | str] | None,
                    model: torch.nn.Module) -> list[tuple[str, type]]:
    if methods is None:
        try:
            find_transformer(model)
            methods = list(METHODS)
        except ValueError:  # not a Vision Transformer: the methods that apply to it
            methods = [name for name in METHODS if not get_method(name).attention]
    if isinstance(methods, (str, type)) or not isinstance(methods, (list, tuple)):
        raise TypeError(f"methods must be a list of CAM classes or names of "
                        f"pytorch_grad_cam.METHODS, got {methods!r}")
    if not methods:
        raise ValueError("methods is empty; give at least one CAM class, e.g. [GradCAM]")
    entries: list[tuple[str, type]] = []
    for index, method in enumerate(methods):
        if isinstance(method, str):
            if method not in METHODS:
                raise ValueError(f"methods[{index}] is {method!r}, which is not one of "
                                 f"{sorted(METHODS)}")
            entries.append((method, METHODS[method]))
        elif isinstance(method, type) and issubclass(method, BaseCAM):
            entries.append((method.__name__, method))
        else:
            raise TypeError(f"methods[{index}] must be a BaseCAM subclass or a name of "
                            f"pytorch_grad_cam.METHODS, got {method!r}")
    return entries


def _metric_names(metrics: Sequence[str] | None, regions: Regions | None) -> list[str]:
    if metrics is None:
        return [m for m in METRICS if (regions is not None or m not in _NEED_REGIONS)
                and m not in OPT_IN_METRICS]
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names from {list(METRICS)}, got {metrics!r}")
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; choose from {list(METRICS)}")
        if name in _NEED_REGIONS and regions is None:
            raise ValueError(f"the metric {name!r} needs regions= (one box or mask per image)")
    return list(metrics)


def _probability_targets(targets: Sequence[Callable]) -> list[Callable]:
    """ClassifierOutputTarget(c) -> ClassifierOutputSoftmaxTarget(c); other
    targets stay as they are."""
    return [ClassifierOutputSoftmaxTarget(t.category) if type(t) is ClassifierOutputTarget else t
            for t in targets]


def evaluate_cam_methods(model: torch.nn.Module,
                         target_layers: list[torch.nn.Module],
                         input_tensor: torch.Tensor,
                         targets: Sequence[Callable] | None = None,
                         methods: Sequence[type | str] | None = None,
                         *,
                         metrics: Sequence[str] | None = None,
                         regions: Regions | None = None,
                         reshape_transform: Callable | None = None,
                         batch_size: int | None = None,
                         probability_targets: bool = True,
                         road_percentiles: Sequence = (20, 40, 60, 80),
                         n_steps: int = 50,
                         method_kwargs: dict | None = None,
                         progress: bool = False,
                         per_image: bool = False) -> dict[str, dict[str, object]]:
    """Compute each method's maps for a batch and score them with the metrics.

    Args:
        model: the classifier (used on its own device; its state is
            restored afterwards).
        target_layers: the layers every method explains.
        input_tensor: B x C x H x W, as the model takes it.
        targets: one target per image (default: each image's top class,
            found with one forward pass); the maps explain these targets.
        methods: CAM classes (BaseCAM subclasses) or names of
            ``pytorch_grad_cam.METHODS``, e.g. ``[GradCAM, "scorecam"]``
            (default: every method of METHODS that applies to the model,
            the attention methods only for a Vision Transformer (they
            use every block, not ``target_layers``); the perturbation methods
            cost hundreds of forward passes per image, SSCAM and ISCAM
            that times their ``n_samples``). A row is named by the class
            name, or by the name given.
        metrics: names from ``METRICS`` (default: all but
            FaithfulnessCorrelation, which costs 100 forward passes per
            method and image, and the sanity checks, which are computed
            when named; the pointing
            games and the relevance accuracies only when ``regions`` is
            given):

            - DropInConfidence / IncreaseInConfidence: the input multiplied
              by the map (cam_mult_image; relative drop, as the papers);
            - ROADMoRF / ROADLeRF: ROAD score change averaged over
              ``road_percentiles``; ROADCombined = (LeRF - MoRF) / 2 (one
              batched pass gives all three). Here the pixels are removed
              by rank (``removal="rank"``: exactly the percentile's share,
              as the ROAD paper's code) with fixed noise (``seed=0``), not
              by grad-cam 1.5.7's threshold, which on maps with flat areas
              removes another share;
            - Deletion / Insertion: RISE areas under the curve with
              ``n_steps`` steps;
            - FaithfulnessCorrelation: 100 random subsets of 224 pixels
              (a quarter of the pixels for images of fewer than 896),
              ``seed=0``, the pixels replaced by 0;
            - Complexity, Sparseness, EntropyComplexity (Bhatt et al.
              2020), Coherency and ARCC (the harmonic
              mean of Coherency, 1 - Complexity and ROADCombined, as
              ``arcc.ARCC(road_percentiles=road_percentiles)``);
            - PointingGame / EnergyPointingGame / RelevanceMassAccuracy /
              RelevanceRankAccuracy against ``regions``;
            - the sanity checks, computed only when named (each re-runs the
              method on a re-initialised copy of the model, layer after
              layer; the model itself is not changed), with the defaults
              of ``metrics.sanity``: MPRT (Spearman correlation of the map
              with the map after full cascading randomisation), sMPRT (the
              same on maps averaged over 50 noisy inputs), eMPRT (the
              ratio of the map's histogram entropy after and before) and
              RandomLogit (SSIM of the maps of the target class and of a
              random other class; needs class targets). ``format_table``
              marks a method that fails one with "FAIL".
        regions: for the pointing games and the relevance accuracies, one
            region per image (see ``pointing_game``: boxes (x1, y1, x2,
            y2) or masks).
        reshape_transform: passed to every method.
        batch_size: images per forward pass for the methods and metrics.
        probability_targets: score the metrics on class probabilities, as
            the papers do: ``ClassifierOutputTarget(c)`` becomes
            ``ClassifierOutputSoftmaxTarget(c)`` for the metrics (the maps
            still explain the given targets). Other targets are used as
            they are.
        road_percentiles: percentiles of the ROAD metrics (percent of
            pixels kept).
        n_steps: steps of the deletion and insertion curves.
        method_kwargs: extra constructor arguments per row name, e.g.
            ``{"SSCAM": {"n_samples": 8}}``.
        progress: show progress bars: the methods' own, and one per metric
            and method, described by what it computes (``"GradCAM:
            ROADMoRF/LeRF/Combined (imputing + scoring)"``, ``"GradCAM:
            Deletion (50 steps)"``, ...).
        per_image: return per-image numpy arrays instead of means.

    Returns:
        ``{method name: {metric name: value}}`` in the order given; a value
        is the mean over the batch (a float), or with ``per_image`` a
        float32 array of B values. ``format_table`` prints it; ``METRICS``
        says for each metric whether higher or lower is better.
    """
    check_model(model)
    entries = _method_entries(methods, model)
    names = _metric_names(metrics, regions)
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    n_steps = check_positive_int("n_steps", n_steps)
    method_kwargs = dict(method_kwargs or {})
    unknown = set(method_kwargs) - {name for name, _ in entries}
    if unknown:
        raise ValueError(f"method_kwargs has entries for {sorted(unknown)}, which are not "
                         f"rows of this evaluation ({[name for name, _ in entries]})")
    inputs = prepare_input(input_tensor, model, volumes=False)
    targets = check_targets(targets, inputs.shape[0])
    if targets is None:
        with model_state_guard(model), torch.inference_mode():
            _, targets = original_scores(model, inputs, None,
                                         batch_size_or_default(batch_size, inputs.device))
    metric_targets = _probability_targets(targets) if probability_targets else targets
    if regions is not None:  # check them before any heavy work
        region_masks(regions, torch.zeros((inputs.shape[0],) + tuple(inputs.shape[2:])))

    rows: dict[str, dict[str, object]] = {}
    for name, method in entries:
        kwargs = dict(method_kwargs.get(name, {}))
        if batch_size is not None:
            kwargs.setdefault("batch_size", batch_size)
        layers: list[torch.nn.Module] | None = target_layers
        reshape = reshape_transform
        if _reads_attention(method):  # the attention of every block, its own layout
            layers, reshape = None, None
        with method(model=model, target_layers=layers, reshape_transform=reshape,
                    progress=progress, **kwargs) as cam:
            maps = cam(input_tensor=inputs, targets=targets)
            values = _score([m for m in names if m not in SANITY_CHECKS], cam, model, inputs,
                            maps, targets, metric_targets, regions, batch_size,
                            road_percentiles, n_steps, progress, name)
        values.update(sanity_values([m for m in names if m in SANITY_CHECKS], inputs, targets,
                                    model, method, layers, kwargs, reshape))
        rows[name] = {metric: (values[metric] if per_image else float(np.mean(values[metric])))
                      for metric in names}
    return rows


def _score(names: Sequence[str], cam: BaseCAM, model: torch.nn.Module, inputs: torch.Tensor,
           maps: Maps, cam_targets: Sequence[Callable], targets: Sequence[Callable],
           regions: Regions | None, batch_size: int | None,
           percentiles: Sequence[Percentile], n_steps: int, progress: bool = False,
           row: str = "") -> dict[str, np.ndarray]:
    """Per-image values of the metrics ``names`` for one method's maps;
    ``cam_targets`` are what the maps explain (Coherency recomputes a map
    for them), ``targets`` what the other metrics score. With ``progress``
    a bar per metric, described ``"<row>: <metric>"``."""
    values: dict[str, np.ndarray] = {}
    wanted = set(names)
    prefix = f"{row}: " if row else ""
    confidence = "/".join(m.replace("InConfidence", "") for m in
                          ("DropInConfidence", "IncreaseInConfidence") if m in wanted)
    if wanted & {"DropInConfidence", "IncreaseInConfidence"}:
        before, after = run_perturbations(inputs, maps, targets, model,
                                          [multiply_tensor_with_cam], batch_size,
                                          progress=progress,
                                          desc=f"{prefix}{confidence}InConfidence")
        after = after[0]
        if "DropInConfidence" in wanted:
            if bool((before <= 0).any()):
                raise ValueError("DropInConfidence (relative drop) needs positive target scores; "
                                 "use probability targets or leave this metric out")
            values["DropInConfidence"] = ((before - after).clamp_min(0) / before).cpu().numpy()
        values["IncreaseInConfidence"] = (after > before).float().cpu().numpy()
    if wanted & {"ROADMoRF", "ROADLeRF", "ROADCombined", "ARCC"}:
        # exact pixel counts and fixed noise: the same numbers in every run
        morf = [ROADMostRelevantFirst(p, removal="rank", seed=0).perturbation
                for p in percentiles]
        lerf = [ROADLeastRelevantFirst(p, removal="rank", seed=0).perturbation
                for p in percentiles]
        before, after = run_perturbations(inputs, maps, targets, model, morf + lerf, batch_size,
                                          progress=progress, desc=f"{prefix}ROADMoRF/LeRF/"
                                                                  "Combined (imputing + scoring)")
        morf_mean, lerf_mean = after[:len(morf)].mean(dim=0), after[len(morf):].mean(dim=0)
        values["ROADMoRF"] = (morf_mean - before).cpu().numpy()
        values["ROADLeRF"] = (lerf_mean - before).cpu().numpy()
        values["ROADCombined"] = ((lerf_mean - morf_mean) / 2).cpu().numpy()
    if "Deletion" in wanted:
        values["Deletion"] = DeletionAUC(n_steps, batch_size=batch_size, progress=progress,
                                         desc=f"{prefix}Deletion ({n_steps} steps)")(
            inputs, maps, targets, model)
    if "Insertion" in wanted:
        values["Insertion"] = InsertionAUC(n_steps, batch_size=batch_size, progress=progress,
                                           desc=f"{prefix}Insertion ({n_steps} steps)")(
            inputs, maps, targets, model)
    if "FaithfulnessCorrelation" in wanted:
        subset = min(FAITHFULNESS_SUBSET, max(1, inputs[0, 0].numel() // 4))
        values["FaithfulnessCorrelation"] = FaithfulnessCorrelation(
            FAITHFULNESS_RUNS, subset, batch_size=batch_size, progress=progress,
            desc=f"{prefix}FaithfulnessCorrelation ({FAITHFULNESS_RUNS} runs)")(
            inputs, maps, targets, model)
    if wanted & {"Complexity", "ARCC"}:
        values["Complexity"] = Complexity()(maps)
    if "Sparseness" in wanted:
        values["Sparseness"] = Sparseness()(maps)
    if "EntropyComplexity" in wanted:
        values["EntropyComplexity"] = EntropyComplexity()(maps)
    if wanted & {"Coherency", "ARCC"}:
        values["Coherency"] = Coherency(progress=progress, desc=f"{prefix}Coherency (the map "
                                                              "of the masked input)")(
            inputs, maps, cam_targets, model, cam)
    if "ARCC" in wanted:
        values["ARCC"] = arcc_from_parts(values["Coherency"], values["Complexity"],
                                         values["ROADCombined"])
    region_metrics = {"PointingGame": PointingGame, "EnergyPointingGame": EnergyPointingGame,
                      "RelevanceMassAccuracy": RelevanceMassAccuracy,
                      "RelevanceRankAccuracy": RelevanceRankAccuracy}
    for name, region_metric in region_metrics.items():
        if name in wanted:
            assert regions is not None  # _metric_names requires them
            values[name] = region_metric()(maps, regions)
    return {name: np.asarray(values[name], dtype=np.float32) for name in names}


def format_table(rows: dict[str, dict[str, object]], precision: int = 4) -> str:
    """``evaluate_cam_methods``' result as a plain-text table: one line per
    method, one column per metric, and under the header whether higher or
    lower is better. Per-image results are shown as their means. A sanity
    check's value that fails its pass mark (``metrics.sanity.SANITY_THRESHOLDS``)
    is followed by "FAIL", and a last line says what a pass needs."""
    if not rows:
        raise ValueError("rows is empty: nothing to format")
    metrics = list(next(iter(rows.values())))
    header = ["method"] + metrics
    better = [""] + [f"({METRICS.get(m, '?')})" for m in metrics]
    def cell(metric: str, value: object) -> str:
        mean = float(np.mean(np.asarray(value)))
        failed = metric in SANITY_CHECKS and not passes(metric, mean)
        return f"{mean:.{precision}f}" + (" FAIL" if failed else "")

    lines = [[name] + [cell(m, values[m]) for m in metrics] for name, values in rows.items()]
    widths = [max(len(row[i]) for row in [header, better] + lines) for i in range(len(header))]

    def render(row: list[str]) -> str:
        return "  ".join([row[0].ljust(widths[0])] +
                         [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    table = [render(header), render(better), rule] + [render(r) for r in lines]
    if any(c.endswith(" FAIL") for row in lines for c in row[1:]):
        marks = ", ".join(f"{m} {'<' if METRICS[m] == 'lower' else '>'} {SANITY_THRESHOLDS[m]:g}"
                          for m in SANITY_CHECKS if m in metrics)
        table.append(f"FAIL: the method fails that sanity check (a pass needs {marks})")
    return "\n".join(table)
