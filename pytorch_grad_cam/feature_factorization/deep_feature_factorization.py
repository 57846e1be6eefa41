"""Deep Feature Factorization (DFF).

Collins, Achanta, Susstrunk, "Deep Feature Factorization For Concept
Discovery", ECCV 2018, https://arxiv.org/abs/1806.10206

The activations of a layer, A (channels x positions of all images), are
factorised by non-negative matrix factorization, A ~ W H: the k columns of
W (channels x k) are concept embeddings, the k rows of H their heat maps
over the positions. A classifier head applied to an embedding tells what a
concept is.
"""
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.call_context import ReleaseOnExit
from pytorch_grad_cam.feature_factorization._nmf import (
    Solver,
    non_negative_matrix_factorization,
)
from pytorch_grad_cam.model_state import model_state_guard
from pytorch_grad_cam.scoring import check_positive_int, model_device
from pytorch_grad_cam.utils.image import create_labels_legend, scale_tensor, show_factorization_on_image

# class names: a dict such as a HuggingFace config's id2label, or a list
_Labels = Mapping[int, str] | Sequence[str]


def dff(activations: np.ndarray | torch.Tensor, n_components: int = 5,
        max_iter: int = 200, tol: float = 1e-4, seed: int = 0, *, solver: Solver = "auto",
        peak_normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Deep Feature Factorization of B x C x h x w activations (numpy or
    torch), as grad-cam 1.5.7's ``dff``.

    Every channel is shifted by its minimum over the batch (NaN counted as
    0), the C x (B h w) matrix is factorised (``non_negative_matrix_
    factorization``: by default scikit-learn's ``NMF(init="random",
    random_state=seed)`` or its port in torch), and the shift is added back
    to the embeddings. Returns the concepts W + shift, a C x n_components
    float32 array of embeddings, and the explanations H, a
    B x n_components x h x w float32 array of heat maps (scikit-learn's
    scale: a map's values are not bounded).

    ``peak_normalize=True`` moves the scale from the heat maps to the
    embeddings: each component's maps then peak at 1, and its embedding is
    the activation vector where the concept is at full strength (the
    product W H is the same; grad-cam 1.5.7 has no such option).
    """
    tensor = activations if isinstance(activations, torch.Tensor) else \
        torch.as_tensor(np.asarray(activations))
    if tensor.dim() < 3:
        raise ValueError(f"activations must be B x C x spatial, got shape {tuple(tensor.shape)}")
    tensor = torch.nan_to_num(tensor.detach().float(), nan=0.0)
    batch, channels = tensor.shape[:2]
    spatial = tuple(tensor.shape[2:])
    matrix = tensor.transpose(0, 1).reshape(channels, -1)  # C x (B * positions)
    offset = matrix.amin(dim=1)
    result = non_negative_matrix_factorization(matrix - offset[:, None], n_components,
                                               max_iter, tol, seed, solver)
    weights, maps = result.W, result.H
    if peak_normalize:
        peak = maps.amax(dim=1).clamp_min(1e-12)
        weights, maps = weights * peak[None], maps / peak[:, None]
    concepts = weights + offset[:, None]
    explanations = maps.reshape((n_components, batch) + spatial)
    return (concepts.cpu().numpy().astype(np.float32),
            explanations.transpose(0, 1).cpu().numpy().astype(np.float32))


class DeepFeatureFactorization(ReleaseOnExit):
    """Concepts of a layer's activations and where they are in the images.

    ``dff(input_tensor, n_components)`` returns ``(concepts,
    explanations)``: the C x n_components concept embeddings and a
    B x n_components x H x W float32 array of heat maps, each scaled to
    [0, 1] and resized to the input, as grad-cam 1.5.7 (see ``dff``). With ``computation_on_concepts`` (for
    example the classifier head, a module mapping C features to class
    scores) it returns a third item, its n_components x n_outputs output on
    the embeddings.

    Args:
        model: the network (used on its own device, state restored).
        target_layer: the module whose output is factorised.
        reshape_transform: maps that output to B x C x h x w.
        computation_on_concepts: applied to the n_components x C
            embeddings.
        max_iter, tol, seed, solver: of the NMF
            (``non_negative_matrix_factorization``; the default "auto" is
            scikit-learn's solver where it is installed, the same algorithm
            in torch otherwise).
        peak_normalize: the embeddings of components scaled so that their
            heat maps peak at 1 (``dff``); this changes the concepts and
            ``computation_on_concepts``' outputs, not the returned maps.
    """

    def __init__(self, model: torch.nn.Module, target_layer: torch.nn.Module,
                 reshape_transform: Callable | None = None,
                 computation_on_concepts: Callable | None = None,
                 max_iter: int = 200, tol: float = 1e-4, seed: int = 0, *,
                 solver: Solver = "auto", peak_normalize: bool = False) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(target_layer, torch.nn.Module) or \
                not any(m is target_layer for m in model.modules()):
            raise ValueError("target_layer must be a module of the model, for example "
                             "model.layer4[-1]")
        if computation_on_concepts is not None and not callable(computation_on_concepts):
            raise TypeError("computation_on_concepts must be callable or None")
        self.model = model
        self.target_layer = target_layer
        self.reshape_transform = reshape_transform
        self.computation_on_concepts = computation_on_concepts
        self.max_iter = check_positive_int("max_iter", max_iter)
        self.tol = tol
        self.seed = seed
        self.solver = solver
        self.peak_normalize = peak_normalize
        self.activations_and_grads = ActivationsAndGradients(model, [target_layer],
                                                             reshape_transform)

    def activations(self, input_tensor: torch.Tensor) -> torch.Tensor:
        """The target layer's output for the batch, B x C x h x w (the
        reshape transform runs in the same inference block as the forward
        pass: it may call modules of the model, as a Hugging Face ConvNeXt's
        final layer norm)."""
        with model_state_guard(self.model), torch.inference_mode():
            with self.activations_and_grads.record(track_gradients=False) as recording:
                self.model(input_tensor)
            activations = recording.activations[0]
            if activations is None:
                raise ValueError("target_layer was not called in the model's forward pass")
            if self.reshape_transform is not None:
                activations = self.reshape_transform(activations)
        if activations.dim() < 3 or activations.shape[0] != input_tensor.shape[0]:
            raise ValueError(f"the target layer's output has shape {tuple(activations.shape)}, "
                             "expected B x C x h x w; pass a reshape_transform")
        return activations

    def __call__(self, input_tensor: torch.Tensor,
                 n_components: int = 16) -> tuple[np.ndarray, ...]:
        if not isinstance(input_tensor, torch.Tensor) or input_tensor.dim() != 4:
            raise ValueError("input_tensor must be a B x C x H x W tensor")
        n_components = check_positive_int("n_components", n_components)
        device = model_device(self.model, fallback=input_tensor.device)
        input_tensor = input_tensor.detach().to(device)
        activations = self.activations(input_tensor)
        concepts, explanations = dff(activations, n_components, self.max_iter, self.tol,
                                     self.seed, solver=self.solver,
                                     peak_normalize=self.peak_normalize)
        size = tuple(input_tensor.shape[2:])
        maps = torch.from_numpy(explanations)
        maps = scale_tensor(maps.reshape((-1,) + tuple(maps.shape[2:])), size)
        explanations = maps.reshape((input_tensor.shape[0], n_components) + size).numpy()
        if self.computation_on_concepts is None:
            return concepts, explanations
        with model_state_guard(self.model), torch.inference_mode():
            embeddings = torch.from_numpy(concepts.T.copy()).to(device)
            outputs = self.computation_on_concepts(embeddings)
        return concepts, explanations, outputs.float().cpu().numpy()


def _labels_of(model: torch.nn.Module, labels: _Labels | None, count: int) -> _Labels:
    if labels is not None:
        return labels
    config = getattr(model, "config", None)
    id2label = getattr(config, "id2label", None)
    if id2label:
        return id2label
    return [f"class {index}" for index in range(count)]


def run_dff_on_image(model: torch.nn.Module, target_layer: torch.nn.Module,
                     classifier: Callable, img_pil: Any, img_tensor: torch.Tensor,
                     reshape_transform: Callable | None = None, n_components: int = 5,
                     top_k: int = 2, *, labels: _Labels | None = None) -> np.ndarray:
    """The DFF picture of one image: the image, the concepts coloured on
    it and a legend naming each concept by the ``top_k`` classes that
    ``classifier`` gives its embedding (softmax scores).

    Args:
        model, target_layer, reshape_transform: as for
            DeepFeatureFactorization.
        classifier: the head that maps a C-dimensional embedding to class
            scores (for example ``model.fc``).
        img_pil: the image as shown, a PIL image or an H x W x 3 array
            (uint8, or float in [0, 1]), the size of ``img_tensor``.
        img_tensor: the model's input for it, C x H x W (or 1 x C x H x W).
        labels: class names (a dict or list); default the model's
            ``config.id2label`` (HuggingFace models) or "class i".

    Returns:
        uint8 H x 3W x 3 RGB array: image | concepts | legend.
    """
    image = np.asarray(img_pil)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"img_pil must be an RGB image (H x W x 3), got shape {image.shape}")
    rgb = image.astype(np.float32) / 255 if image.dtype == np.uint8 else \
        image.astype(np.float32)
    tensor = img_tensor if img_tensor.dim() == 4 else img_tensor[None]
    if tensor.shape[0] != 1 or tuple(tensor.shape[2:]) != rgb.shape[:2]:
        raise ValueError(f"img_tensor has shape {tuple(img_tensor.shape)}; expected one image "
                         f"of the picture's size {rgb.shape[:2]}")
    with DeepFeatureFactorization(model, target_layer, reshape_transform, classifier) as method:
        _, explanations, outputs = method(tensor, n_components)
    scores = torch.softmax(torch.from_numpy(outputs), dim=-1).numpy()
    legend = create_labels_legend(scores, _labels_of(model, labels, scores.shape[1]), top_k)
    visualization = show_factorization_on_image(rgb, explanations[0], image_weight=0.3,
                                                concept_labels=legend)
    return np.hstack((np.uint8(np.clip(rgb, 0, 1) * 255), visualization))
