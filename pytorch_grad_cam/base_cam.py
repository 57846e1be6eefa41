"""BaseCAM: everything the CAM methods share.

A call runs the model once with forward hooks on the target layers, picks
the target score of every image, takes the gradients of those scores with
respect to the recorded layer outputs, lets the method weight the
activations (``get_cam_weights``, the one override most methods need),
and turns the weighted activations into maps: ReLU, min-max normalised,
scaled to the input size, averaged over the target layers and normalised
again.

The model is the caller's: everything changed for the computation (eval
mode, ``requires_grad`` of the parameters, grad mode, hooks) is put back
exactly, also when an exception is raised anywhere in the call.
"""
import os
import sys
import warnings
from contextlib import ExitStack, contextmanager
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import ttach as tta
from tqdm.auto import tqdm

from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

_LEGACY = object()
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_at_caller(message: str, category: type = UserWarning) -> None:
    """``warnings.warn`` attributed to the first frame outside this package:
    the user's line, however many overrides of a method lie in between."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def model_device(model: torch.nn.Module, fallback: Optional[torch.device] = None) -> torch.device:
    """The device of the model's first parameter or buffer."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return fallback if fallback is not None else torch.device("cpu")


def _model_float_dtype(model: torch.nn.Module) -> Optional[torch.dtype]:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def _describe(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _given(value) -> str:
    """The value given, for error messages: its (shortened) repr and type,
    or the type and shape of an array."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) or isinstance(value, np.ndarray):
        return f"{type(value).__name__} of shape {tuple(shape)}"
    return f"{_describe(value)} ({type(value).__name__})"


def select_output(output, output_selector: Optional[Callable] = None):
    """The tensor of scores inside a model output: ``output_selector(output)``
    if given, else the tensor itself, the ``logits`` of a dict or ModelOutput,
    the first element of a tuple, or a list as it is (one entry per image,
    as detection models return)."""
    if output_selector is not None:
        return output_selector(output)
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits")
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, tuple) and len(output) > 0 and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, list):
        return output  # one entry per image (for example detection models)
    raise TypeError(f"the model returned {type(output).__name__}, which holds no tensor "
                    "of scores that could be found; pass output_selector=lambda out: "
                    "... that returns the B x num_classes score tensor")


def check_input_tensor(value, name: str = "input_tensor", volumes: bool = True) -> None:
    """Raise TypeError/ValueError, naming ``name`` and the value given, unless
    ``value`` is a finite floating point batch B x C x H x W (or, with
    ``volumes``, B x C x D x H x W) of at least one image."""
    layout = "B x C x H x W (or B x C x D x H x W)" if volumes else "B x C x H x W"
    if not isinstance(value, torch.Tensor):
        hint = (f"; convert it with torch.from_numpy({name})" if isinstance(value, np.ndarray)
                else "")
        raise TypeError(f"{name} must be a torch.Tensor of shape {layout}, "
                        f"got {_given(value)}{hint}")
    shape = tuple(value.shape)
    if value.dim() == 3:
        raise ValueError(f"{name} must be a batch {layout}, got shape {shape}; add the batch "
                         f"dimension with {name}.unsqueeze(0)")
    if value.dim() not in ((4, 5) if volumes else (4,)):
        raise ValueError(f"{name} must be a batch {layout}, got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {shape}); give at least one image")
    if not (value.is_floating_point() or value.is_complex()):
        raise TypeError(f"{name} must be a floating point tensor, got dtype {value.dtype}; "
                        f"convert it, for example with preprocess_image() or "
                        f"{name}.float() / 255")
    if not _all_finite(value):
        finite = torch.isfinite(value)
        nan = int(torch.isnan(value).sum())
        first = tuple((~finite).nonzero()[0].tolist())
        raise ValueError(f"{name} contains {nan} NaN and {int((~finite).sum()) - nan} inf "
                         f"values (the first at index {first}); it must be finite, or the "
                         "model's scores and the maps are meaningless")


def check_targets_against_outputs(targets: Sequence[Callable], outputs) -> None:
    """Let every target that can check a model output (``check_output``,
    for example a class index against the number of classes) check its
    image's output; the error names the target."""
    for index, (target, output) in enumerate(zip(targets, outputs)):
        check = getattr(target, "check_output", None)
        if check is None:
            continue
        try:
            check(output)
        except ValueError as error:
            raise ValueError(f"targets[{index}] ({_describe(target)}): {error}") from error


def check_target_layers(model: torch.nn.Module, target_layers) -> None:
    """Raise TypeError/ValueError, naming the entry and the value given,
    unless ``target_layers`` is a non-empty list of modules of ``model``."""
    if not isinstance(target_layers, (list, tuple)):
        raise TypeError(f"target_layers must be a list of torch.nn.Module, "
                        f"got {_given(target_layers)}")
    if len(target_layers) == 0:
        raise ValueError(f"target_layers is empty ({target_layers!r}); give at least one "
                         "module of the model, for example target_layers=[model.layer4[-1]]")
    module_ids = {id(m) for m in model.modules()}
    for index, layer in enumerate(target_layers):
        if not isinstance(layer, torch.nn.Module):
            raise TypeError(f"target_layers[{index}] must be a torch.nn.Module, "
                            f"got {_given(layer)}")
        if id(layer) not in module_ids:
            raise ValueError(f"target_layers[{index}] ({_describe(layer)}) is not "
                             "a module of the model; take it from the model itself, "
                             "for example model.layer4[-1]")


def _all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or inf in the tensor. One sum decides the common case (a sum
    of finite values is finite unless it overflows); only then is every
    element checked. 20x cheaper than isfinite(tensor).all() on an image."""
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def _all_modules(model: torch.nn.Module) -> List[torch.nn.Module]:
    """model.modules() as a list, without the generator recursion (a third
    of its cost, which a call pays on every module)."""
    modules, seen, index = [model], {id(model)}, 0
    while index < len(modules):
        for child in modules[index]._modules.values():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                modules.append(child)
        index += 1
    return modules


@contextmanager
def model_state_guard(model: torch.nn.Module, eval_mode: bool = True, freeze: bool = True):
    """Put the model in eval mode with frozen parameters for the duration of
    the block and restore every training flag and ``requires_grad`` exactly,
    whatever happens inside.

    Only what differs is touched (``model.eval()`` only when some module is
    training, flags written back only where they changed): on a small
    network walking and re-setting every module costs as much as a forward
    pass of one image.
    """
    modules = _all_modules(model)
    training = [module.training for module in modules]
    params = [p for module in modules for p in module._parameters.values() if p is not None]
    requires = [p.requires_grad for p in params]
    try:
        if eval_mode and any(training):
            model.eval()
        if freeze:
            for p, flag in zip(params, requires):
                if flag:
                    p.requires_grad = False  # the attribute: half the cost of requires_grad_()
        yield
    finally:
        for p, flag in zip(params, requires):
            if p.requires_grad != flag:
                p.requires_grad = flag
        for module, flag in zip(modules, training):
            if module.training != flag:
                module.training = flag


class BaseCAM:
    """Base class of the class activation map methods.

    Args:
        model: the network; it is used as it is, on its own device.
        target_layers: the modules whose outputs are explained (a list).
        reshape_transform: maps a layer's output to B x C x H x W (for
            example token layouts of Vision Transformers).
        batch_size: images per forward pass of the perturbation methods
            and of ``aug_smooth``'s copies (also settable later as
            ``cam.batch_size``); default chosen for the model's device (8
            on a CPU, 64 on a GPU).
        progress: show a progress bar for the perturbation passes.
        output_selector: picks the score tensor from a model output that is
            not a tensor (default: ``.logits`` of dicts and ModelOutputs,
            the first element of tuples).
        tta_transforms: the ttach transforms used by ``aug_smooth``
            (default: horizontal flip x multiply by 0.9, 1.0, 1.1).

    The seed's arguments ``target_layer=`` (one module) and ``use_cuda=``
    still work, with a DeprecationWarning.
    """

    #: whether the method needs the gradients of the target scores
    uses_gradients = True
    #: False for a method that chooses the layers it records itself
    #: (FullGrad): ``target_layers`` may then be left out; given ones are
    #: still checked like every method's
    uses_target_layers = True

    def __init__(self,
                 model: torch.nn.Module,
                 target_layers=None,
                 reshape_transform: Optional[Callable] = None,
                 compute_input_gradient: bool = False,
                 uses_gradients: Optional[bool] = None,
                 tta_transforms: Optional[tta.Compose] = None,
                 batch_size: Optional[int] = None,
                 progress: bool = True,
                 output_selector: Optional[Callable] = None,
                 *,
                 target_layer=None,
                 use_cuda=None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {_given(model)}")
        if isinstance(reshape_transform, bool) and use_cuda is None:
            # the seed's positional order was (model, target_layer, use_cuda, ...)
            use_cuda, reshape_transform = reshape_transform, None
        if target_layer is not None:
            if target_layers is not None:
                raise ValueError("pass either target_layers=[...] or the deprecated "
                                 "target_layer=..., not both")
            warn_at_caller("target_layer= is deprecated; use target_layers=[layer]",
                           DeprecationWarning)
            target_layers = [target_layer]
        elif isinstance(target_layers, torch.nn.Module):
            warn_at_caller("passing one module as target_layers is deprecated; "
                           "use target_layers=[layer]", DeprecationWarning)
            target_layers = [target_layers]
        if target_layers is None:
            if self.uses_target_layers:
                raise TypeError("target_layers is required: a list of modules of the model, "
                                "for example target_layers=[model.layer4[-1]]")
            target_layers = []
        else:
            check_target_layers(model, target_layers)
        if reshape_transform is not None and not callable(reshape_transform):
            raise TypeError(f"reshape_transform must be callable or None, "
                            f"got {_given(reshape_transform)}")
        if output_selector is not None and not callable(output_selector):
            raise TypeError(f"output_selector must be callable or None, "
                            f"got {_given(output_selector)}")

        self.model = model
        self.use_cuda = False
        if use_cuda is not None:
            warn_at_caller("use_cuda= is deprecated; move the model with model.to('cuda') "
                           "(the CAM uses the model's device)", DeprecationWarning)
            if use_cuda:
                if torch.cuda.is_available():
                    self.model = model.cuda()
                    self.use_cuda = True
                else:
                    warn_at_caller("use_cuda=True but CUDA is not available; running on the "
                                   "CPU", RuntimeWarning)
        self.target_layers = list(target_layers)
        self.reshape_transform = reshape_transform
        self.compute_input_gradient = compute_input_gradient
        if uses_gradients is not None:
            self.uses_gradients = uses_gradients
        self.tta_transforms = tta_transforms if tta_transforms is not None else tta.Compose(
            [tta.HorizontalFlip(), tta.Multiply(factors=[0.9, 1, 1.1])])
        self.progress = progress
        self.output_selector = output_selector
        self.batch_size = batch_size
        self.activations_and_grads = ActivationsAndGradients(
            self.model, self.target_layers, reshape_transform)
        self.outputs = None
        #: during a call with ``compute_input_gradient``: d(score)/d(input),
        #: same shape as the input (None outside a call)
        self.input_gradient = None

    # ------------------------------------------------------------------ API
    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    @property
    def batch_size(self) -> int:
        if self._batch_size is None:
            return self._default_batch_size()
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"batch_size must be a positive int, got {_describe(value)}")
            if value < 1:
                raise ValueError(f"batch_size must be >= 1, got {value}")
            value = int(value)
        self._batch_size = value

    def _default_batch_size(self) -> int:
        # On a CPU the time per image of a forward pass is lowest at batches
        # of 4 to 8 and grows beyond (resnet50: 8 ran 1.3x faster per image
        # than 32, see bench/README.md); a GPU wants large batches.
        return 64 if self.device.type == "cuda" else 8

    def __call__(self, input_tensor: torch.Tensor, targets=None, aug_smooth: bool = False,
                 eigen_smooth: bool = False, target_category=_LEGACY) -> np.ndarray:
        """One map per image: float32 numpy array B x H x W (B x D x H x W
        for volumes) with values in [0, 1]."""
        if target_category is not _LEGACY:
            if targets is not None:
                raise ValueError("pass either targets=[...] or the deprecated "
                                 "target_category=..., not both")
            targets = self._legacy_targets(target_category)
        elif targets is not None and self._looks_like_categories(targets):
            targets = self._legacy_targets(targets)
        input_tensor = self._check_input(input_tensor)
        targets = self._check_targets(targets, input_tensor.shape[0])
        if aug_smooth and input_tensor.dim() != 4:
            raise ValueError(f"aug_smooth=True needs images of shape B x C x H x W that "
                             f"ttach can flip; got input_tensor of shape "
                             f"{tuple(input_tensor.shape)}")
        with ExitStack() as stack:
            stack.enter_context(model_state_guard(self.model))
            if aug_smooth:
                cam = self.forward_augmentation_smoothing(input_tensor, targets, eigen_smooth)
            else:
                cam = self.forward(input_tensor, targets, eigen_smooth)
        cam = cam.detach().float().cpu().numpy()
        self._warn_if_empty(cam)
        return cam

    # ------------------------------------------------------------- checks
    @staticmethod
    def _looks_like_categories(targets) -> bool:
        if isinstance(targets, (bool, np.bool_)):
            return False
        if isinstance(targets, (int, np.integer)):
            return True
        return (isinstance(targets, (list, tuple)) and len(targets) > 0
                and all(isinstance(t, (int, np.integer)) and not isinstance(t, bool)
                        for t in targets))

    def _legacy_targets(self, target_category):
        warn_at_caller("target_category= is deprecated; use "
                       "targets=[ClassifierOutputTarget(category)] (one per image)",
                       DeprecationWarning)
        if target_category is None:
            return None
        if isinstance(target_category, (int, np.integer)) and not isinstance(target_category, bool):
            return _RepeatTarget(ClassifierOutputTarget(int(target_category)))
        if isinstance(target_category, (list, tuple, np.ndarray)):
            return [ClassifierOutputTarget(int(c)) for c in target_category]
        raise TypeError(f"target_category must be an int, a list of ints or None, "
                        f"got {_describe(target_category)}")

    def _check_input(self, input_tensor) -> torch.Tensor:
        check_input_tensor(input_tensor)
        device = model_device(self.model, fallback=input_tensor.device)
        dtype = _model_float_dtype(self.model) or input_tensor.dtype
        with torch.inference_mode(False):
            # a tensor made under inference_mode cannot enter autograd
            x = input_tensor.detach()
            if x.is_inference():
                x = x.clone()
            return x.to(device=device, dtype=dtype)

    @staticmethod
    def _check_targets(targets, batch: int):
        if targets is None or isinstance(targets, _RepeatTarget):
            return targets
        if callable(targets) and not isinstance(targets, (list, tuple)):
            raise TypeError("targets must be a list with one target per image, "
                            f"got a single {_given(targets)}; use [target] * batch_size")
        if not isinstance(targets, (list, tuple)):
            raise TypeError(f"targets must be a list of callables (one per image) or None, "
                            f"got {_given(targets)}")
        if len(targets) != batch:
            raise ValueError(f"targets has {len(targets)} entries but the batch has {batch} "
                             "images; give one target per image")
        for index, target in enumerate(targets):
            if not callable(target):
                raise TypeError(f"targets[{index}] must be callable (for example "
                                f"ClassifierOutputTarget(281)), got {_describe(target)}")
        return list(targets)

    # ------------------------------------------------------- the forward
    def select_output(self, output):
        """The tensor of scores inside a model output."""
        return select_output(output, self.output_selector)

    def resolve_targets(self, targets, outputs, batch: int):
        """Per-image target callables; None means each image's top class."""
        if isinstance(targets, _RepeatTarget):
            targets = [targets.target] * batch
        if targets is None:
            if not (isinstance(outputs, torch.Tensor) and outputs.dim() == 2):
                raise ValueError("targets=None picks each image's top class and needs a "
                                 "model output of shape B x num_classes; this model's output "
                                 "is different, so give targets explicitly")
            categories = outputs.argmax(dim=-1).tolist()
            targets = [ClassifierOutputTarget(c) for c in categories]
        if len(outputs) != batch:
            raise ValueError(f"the model returned {len(outputs)} outputs for a batch of {batch}")
        check_targets_against_outputs(targets, outputs)
        return targets

    @staticmethod
    def target_scores(targets: Sequence[Callable], outputs) -> torch.Tensor:
        """The scalar score of every image (a 1-D tensor)."""
        if (isinstance(outputs, torch.Tensor) and outputs.dim() == 2
                and len(targets) == outputs.shape[0] > 1
                and all(type(target) is ClassifierOutputTarget for target in targets)):
            # the common case in one indexing operation instead of one per image
            classes = outputs.shape[1]
            if all(-classes <= target.category < classes for target in targets):
                index = torch.tensor([target.category % classes for target in targets],
                                     device=outputs.device)
                return outputs.gather(1, index[:, None])[:, 0]
        scores = []
        for index, (target, output) in enumerate(zip(targets, outputs)):
            score = target(output)
            if not isinstance(score, torch.Tensor):
                score = torch.as_tensor(score, dtype=torch.float32)
            if score.numel() != 1:
                raise ValueError(f"targets[{index}] ({type(target).__name__}) returned a "
                                 f"tensor of shape {tuple(score.shape)}; a target must "
                                 "return one scalar score per image")
            scores.append(score.reshape(()))
        return torch.stack(scores)

    def _run_model(self, input_tensor: torch.Tensor):
        """Forward pass recording the target layers' outputs."""
        recorder = self.activations_and_grads
        recorder.track_gradients = self.uses_gradients
        grad_context = (torch.enable_grad() if self.uses_gradients or self.compute_input_gradient
                        else torch.inference_mode())
        with torch.inference_mode(False), grad_context:
            if self.compute_input_gradient:
                input_tensor = input_tensor.clone().requires_grad_(True)
            with recorder.record():
                raw = self.model(input_tensor)
        for index, activation in enumerate(recorder.activations):
            if activation is None:
                raise ValueError(f"target_layers[{index}] ({_describe(self.target_layers[index])}) "
                                 "was never called in the model's forward pass; choose a module "
                                 "that the forward pass uses")
        return input_tensor, raw

    def forward(self, input_tensor: torch.Tensor, targets, eigen_smooth: bool = False) -> torch.Tensor:
        """The maps as a torch tensor B x H x W on the model's device."""
        batch = input_tensor.shape[0]
        try:
            input_tensor, raw = self._run_model(input_tensor)
            outputs = self.select_output(raw)
            targets = self.resolve_targets(targets, outputs, batch)
            activations = self.activations_and_grads.activations
            self._check_layer_shapes(activations, input_tensor)
            if self.uses_gradients:
                with torch.inference_mode(False), torch.enable_grad():
                    scores = self.target_scores(targets, outputs)
                    wrt = list(activations)
                    if self.compute_input_gradient:
                        wrt.append(input_tensor)
                    grads = [g.detach() for g in self.compute_gradients(scores, wrt)]
                if self.compute_input_gradient:
                    self.input_gradient = grads.pop()
                self.activations_and_grads.gradients = grads
            else:
                grads = [None] * len(activations)
                # the targets are checked once here, before any perturbation pass
                self.target_scores(targets, outputs)
            self.outputs = outputs.detach() if isinstance(outputs, torch.Tensor) else outputs
            activations = [a.detach() for a in activations]
            cam_per_layer = self.compute_cam_per_layer(input_tensor.detach(), targets,
                                                       activations, grads, eigen_smooth)
            return self.aggregate_multi_layers(cam_per_layer)
        finally:
            self.input_gradient = None
            self.activations_and_grads.release()

    def _check_layer_shapes(self, activations, input_tensor: torch.Tensor) -> None:
        """Raise before the backward pass and the perturbation passes if a
        layer's output (after reshape_transform) is not B x C x H x W."""
        batch, spatial = input_tensor.shape[0], input_tensor.dim() - 2
        for index, activation in enumerate(activations):
            self._to_bchw(activation.detach(), index, "activations", batch, spatial)

    def compute_gradients(self, scores: torch.Tensor,
                          inputs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Gradients of the summed target scores with respect to ``inputs``:
        the recorded outputs of the target layers (their raw layout, before
        ``reshape_transform``), followed by the input batch when
        ``compute_input_gradient`` is set. Zeros where a score does not
        depend on an input. The images of a batch are independent, so the
        sum gives every image its own gradient.

        This is the extension point of methods whose "gradient" is more
        than the first derivative (ShapleyCAM adds a Hessian-vector
        product); it runs with autograd enabled.
        """
        if scores.requires_grad:
            grads = torch.autograd.grad(scores.sum(), list(inputs), allow_unused=True)
        else:
            grads = [None] * len(inputs)
        return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]

    def _to_bchw(self, tensor: torch.Tensor, index: int, what: str, batch: int, spatial: int):
        if self.reshape_transform is not None:
            tensor = self.reshape_transform(tensor)
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2 + spatial \
                or tensor.shape[0] != batch:
            shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            expected = "B x C x H x W" if spatial == 2 else "B x C x D x H x W"
            hint = (f"check reshape_transform ({_describe(self.reshape_transform)}), "
                    "which must return that layout" if self.reshape_transform is not None else
                    "pass a reshape_transform that turns it into that layout (for token "
                    "outputs of Vision Transformers: reshape_transforms.vit_reshape_transform)")
            raise ValueError(f"the {what} of target_layers[{index}] have shape {shape}, "
                             f"expected {expected} with B={batch}; {hint}")
        return tensor.float()

    def compute_cam_per_layer(self, input_tensor, targets, activations, grads, eigen_smooth):
        batch, spatial = input_tensor.shape[0], input_tensor.dim() - 2
        size = tuple(input_tensor.shape[2:])
        cams = []
        for index, layer in enumerate(self.target_layers):
            layer_activations = self._to_bchw(activations[index], index, "activations", batch, spatial)
            layer_grads = None
            if grads[index] is not None:
                layer_grads = self._to_bchw(grads[index], index, "gradients", batch, spatial)
            cam = self.get_cam_image(input_tensor, layer, targets, layer_activations,
                                     layer_grads, eigen_smooth)
            cam = torch.nan_to_num(cam.float(), nan=0.0, posinf=torch.finfo(torch.float32).max,
                                   neginf=0.0)
            cams.append(scale_cam_image(torch.relu(cam), size))
        return cams[0][:, None] if len(cams) == 1 else torch.stack(cams, dim=1)

    def aggregate_multi_layers(self, cam_per_layer: torch.Tensor) -> torch.Tensor:
        if cam_per_layer.shape[1] == 1:
            cam = torch.relu(cam_per_layer[:, 0])  # the mean of one layer is that layer
        else:
            cam = torch.relu(cam_per_layer).mean(dim=1)
        return scale_cam_image(cam)

    @staticmethod
    def _warn_if_empty(cam: np.ndarray) -> None:
        """One warning per call, naming the images whose map is all zeros."""
        empty = np.flatnonzero(cam.reshape(len(cam), -1).max(axis=1) <= 0).tolist()
        if empty:
            warn_at_caller(
                f"the class activation map is all zeros for image(s) {empty}: no location of the "
                "target layer has a positive weighted activation for the target, or all "
                "locations have the same value (for example all gradients are zero, as for the "
                "output of a Vision Transformer's last block, whose gradients reach only the "
                "class token, or all activations are zero). Choose an earlier target layer "
                "(for ViTs encoder.layers[-1].ln_1 / blocks[-1].norm1), another target or "
                "another method.",
                RuntimeWarning)

    # ------------------------------------------------------ method hooks
    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: List[Callable], activations: torch.Tensor,
                        grads: Optional[torch.Tensor]) -> torch.Tensor:
        """B x C weights of the activations' channels: the method's idea."""
        raise NotImplementedError

    def get_cam_image(self, input_tensor, target_layer, targets, activations, grads,
                      eigen_smooth: bool = False) -> torch.Tensor:
        """B x H x W map of one layer (before ReLU and scaling)."""
        weights = self.get_cam_weights(input_tensor, target_layer, targets, activations, grads)
        weighted = weights.reshape(weights.shape + (1,) * (activations.dim() - 2)) * activations
        if eigen_smooth:
            return get_2d_projection(weighted)
        return weighted.sum(dim=1)

    # -------------------------------------------- shared by perturbations
    def chunks(self, count: int, desc: str, size: Optional[int] = None):
        """(start, stop) ranges of ``size`` (default ``batch_size``) items,
        with a progress bar."""
        step = size or self.batch_size
        with tqdm(total=count, desc=desc, disable=not self.progress, leave=False) as bar:
            for start in range(0, count, step):
                stop = min(count, start + step)
                yield start, stop
                bar.update(stop - start)

    def perturbed_scores(self, count: int, make_inputs: Callable[[int, int], torch.Tensor],
                         owners: torch.Tensor, targets: Sequence[Callable],
                         desc: str) -> torch.Tensor:
        """Target scores of ``count`` perturbed inputs, a float32 tensor.

        ``make_inputs(start, stop)`` builds inputs ``start .. stop - 1``; it
        is called ``batch_size`` items at a time, so the inputs never all
        exist at once. ``owners[i]`` is the index of the image whose target
        scores input ``i``. Runs under ``torch.inference_mode`` with the
        progress bar of :meth:`chunks`."""
        scores = torch.empty(count, dtype=torch.float32, device=owners.device)
        with torch.inference_mode():
            for start, stop in self.chunks(count, desc):
                outputs = self.select_output(self.model(make_inputs(start, stop)))
                rows = [targets[i] for i in owners[start:stop].tolist()]
                scores[start:stop] = self.target_scores(rows, outputs).float()
        return scores

    # ------------------------------------------------------ aug smoothing
    def forward_augmentation_smoothing(self, input_tensor, targets, eigen_smooth=False):
        """Test-time augmentation: the augmented copies run batched,
        de-augmented and averaged.

        The copies of as many transforms as fit in ``batch_size`` images
        (at least one transform's copies of the whole batch) go through
        one pass: on a GPU (default ``batch_size`` 64) that is usually all
        of them at once; on a CPU (default 8), whose time per image grows
        with the batch beyond a few images, a batch of 8 images runs as one
        pass per transform. The perturbation methods chunk their own
        passes by ``batch_size`` as well. Every image's map is independent
        of the others in its pass, so the grouping does not change the
        result."""
        transforms = list(self.tta_transforms)
        batch = input_tensor.shape[0]
        group = max(1, self.batch_size // batch)
        result, outputs = None, []
        for first in range(0, len(transforms), group):
            chosen = transforms[first:first + group]
            augmented = torch.cat([t.augment_image(input_tensor) for t in chosen], dim=0)
            if isinstance(targets, _RepeatTarget) or targets is None:
                all_targets = targets
            else:
                all_targets = list(targets) * len(chosen)
            cams = self.forward(augmented, all_targets, eigen_smooth)
            outputs.append(self.outputs)
            for k, transform in enumerate(chosen):
                cam = transform.deaugment_mask(cams[k * batch:(k + 1) * batch, None])[:, 0]
                result = cam if result is None else result + cam
        if all(isinstance(o, torch.Tensor) for o in outputs):
            # the model's outputs of every augmented copy, transform by transform
            self.outputs = torch.cat(outputs, dim=0)
        return result / len(transforms)

    # --------------------------------------------------- context manager
    def release(self):
        """Nothing stays registered between calls; kept for compatibility."""
        self.activations_and_grads.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.release()
        return False  # never swallow an exception


class _RepeatTarget:
    """One legacy target category for every image of the batch."""

    def __init__(self, target):
        self.target = target
