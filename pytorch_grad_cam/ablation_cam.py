import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from pytorch_grad_cam.ablation_layer import AblationLayer
from pytorch_grad_cam.activations_and_gradients import owned_hooks
from pytorch_grad_cam.base_cam import BaseCAM, _all_modules, current_call
from pytorch_grad_cam.registry import register_method


class _PrefixMismatch(Exception):
    pass


@register_method("ablationcam", perturbation=True)
class AblationCAM(BaseCAM):
    """Ablation-CAM: channels weighted by the score drop when they are zeroed.

    weights_k = (y - y_k) / y, with y the target score and y_k the score
    with channel k of the target layer set to zero;
    map = ReLU(sum_k weights_k * A_k)

    Desai & Ramaswamy, "Ablation-CAM: Visual Explanations for Deep
    Convolutional Network via Gradient-free Localization", WACV 2020,
    https://openaccess.thecvf.com/content_WACV_2020/papers/Desai_Ablation-CAM_Visual_Explanations_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.pdf

    ``prefix_once=True`` (default): the layers before the target layer run
    once per chunk of ablated copies: a forward hook replaces the layer's
    output of one image by the batch of its ablated copies, so only the
    layers after it run on all of them. The first chunk carries one
    unablated copy as a control; when the rest of the network cannot take
    the larger batch (for example features from before the target layer
    concatenated after it, as in DenseNet), or the control does not
    reproduce the image's score, the copies run as full forward passes of
    the repeated input instead, ``batch_size`` images at a time
    (``used_prefix_once`` and ``fallback_reason`` tell what ran).
    ``prefix_once=False`` always does the latter.

    Chunk size: the prefix runs once per chunk, so large chunks are what
    makes it fast. Unless ``batch_size`` is given, a chunk takes as many
    copies as fit in ``chunk_memory`` bytes (default 128 MiB on a CPU,
    512 MiB on a GPU), counting per copy its target-layer output and the
    largest output of a layer after it (measured in the first forward pass).

    ``zero_channel_shortcut=True`` (default): a channel that already equals
    the ablation value everywhere is not run; ablating it changes nothing,
    its weight is exactly 0.

    ``ratio_channels_to_ablate`` < 1 ablates only that share of the channels
    (those with the largest mean activation); the others get weight 0.
    """

    uses_gradients = False

    def __init__(self, model: torch.nn.Module,
                 target_layers: Optional[List[torch.nn.Module]] = None,
                 reshape_transform: Optional[Callable] = None,
                 ablation_layer: Optional[AblationLayer] = None, batch_size: Optional[int] = None,
                 ratio_channels_to_ablate: float = 1.0,
                 prefix_once: bool = True, zero_channel_shortcut: bool = True,
                 chunk_memory: Optional[int] = None, **kwargs: Any) -> None:
        super().__init__(model, target_layers, reshape_transform, batch_size=batch_size, **kwargs)
        if ablation_layer is not None and not isinstance(ablation_layer, AblationLayer):
            raise TypeError("ablation_layer must be an AblationLayer (or AblationLayerVit) or "
                            f"None, got {type(ablation_layer).__name__}")
        if not 0 < ratio_channels_to_ablate <= 1:
            raise ValueError(f"ratio_channels_to_ablate must be in (0, 1], "
                             f"got {ratio_channels_to_ablate}")
        if chunk_memory is not None and (isinstance(chunk_memory, bool)
                                         or not isinstance(chunk_memory, int) or chunk_memory < 1):
            raise ValueError(f"chunk_memory must be a positive number of bytes or None, "
                             f"got {chunk_memory!r}")
        self.ablation_layer = ablation_layer
        self.ratio_channels_to_ablate = ratio_channels_to_ablate
        self.prefix_once = bool(prefix_once)
        self.zero_channel_shortcut = bool(zero_channel_shortcut)
        self.chunk_memory = chunk_memory
        #: whether the last call ran only the layers after the target layer
        #: on the ablated copies (None before the first call)
        self.used_prefix_once: Optional[bool] = None
        #: why the last call fell back to full forward passes (None if it did not)
        self.fallback_reason: Optional[str] = None
        #: ablated copies per chunk in the last call
        self.last_chunk_size: Optional[int] = None

    def _channel_dim(self, raw: torch.Tensor, channels: int) -> int:
        if self.ablation_layer is not None:
            return self.ablation_layer.channel_dim % raw.dim()
        if self.reshape_transform is None:
            return 1
        # token layouts (B x N x C, B x H x W x C) keep channels last
        for dim in range(raw.dim() - 1, 0, -1):
            if raw.shape[dim] == channels:
                return dim
        raise ValueError("cannot find the channel axis of the target layer's output "
                         f"{tuple(raw.shape)} for {channels} channels; pass "
                         "ablation_layer=AblationLayer() or AblationLayerVit()")

    def record(self, input_tensor: torch.Tensor) -> Tuple[torch.Tensor, Any]:
        """The recording forward pass; it also measures, for every target
        layer, the largest output of a layer that runs after it (bytes per
        image, kept in the call's state): the ablated copies go through
        those layers."""
        layers = {id(layer): i for i, layer in enumerate(self.target_layers)}
        sizes: List[Tuple[int, int]] = []
        fired: Dict[int, Tuple[int, Optional[int]]] = {}

        def measure(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if not mine():
                return  # another thread's forward pass
            index = layers.get(id(module))
            if index is not None and isinstance(output, torch.Tensor):
                fired[index] = (len(sizes), output.data_ptr())  # its last call counts
                return
            for tensor in (output if isinstance(output, (tuple, list)) else (output,)):
                if isinstance(tensor, torch.Tensor):
                    sizes.append((tensor.data_ptr(), tensor.numel() * tensor.element_size()))

        with owned_hooks() as mine:
            handles = [m.register_forward_hook(measure) for m in _all_modules(self.model)]
            try:
                result = super().record(input_tensor)
            finally:
                for handle in handles:
                    handle.remove()
        suffix_bytes = []
        for index in range(len(self.target_layers)):
            start, pointer = fired.get(index, (len(sizes), None))
            # the modules that contain the target layer return its output itself
            after = [size for ptr, size in sizes[start:] if ptr != pointer]
            suffix_bytes.append(max(after, default=0) // input_tensor.shape[0])
        current_call().state["suffix_bytes"] = suffix_bytes
        return result

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: List[Callable], activations: torch.Tensor,
                        grads: Optional[torch.Tensor]) -> torch.Tensor:
        call = current_call()
        index = call.layer_index
        raw = call.activations[index]
        batch, channels = activations.shape[:2]
        channel_dim = self._channel_dim(raw, channels)
        value = self.ablation_layer.value if self.ablation_layer is not None else 0.0
        per_channel = raw.movedim(channel_dim, 1).flatten(2)  # B x C x N
        if self.zero_channel_shortcut:
            active = (per_channel != value).any(dim=2)
        else:
            active = torch.ones(per_channel.shape[:2], dtype=torch.bool, device=raw.device)
        if self.ratio_channels_to_ablate < 1:
            keep = max(1, math.ceil(self.ratio_channels_to_ablate * channels))
            top = per_channel.float().mean(dim=2).topk(keep, dim=1).indices
            active &= torch.zeros_like(active).scatter_(1, top, True)
        original = self.target_scores(targets, call.outputs).float()
        scores = original[:, None].repeat(1, channels)
        # per call: the path taken, the chunk size and one buffer for the copies
        state: Dict[str, Any] = {"prefix_once": self.prefix_once, "checked": False,
                                 "original": original, "buffer": None, "step": self.batch_size,
                                 "fallback_reason": None}
        if self.prefix_once and self._batch_size is None:
            per_copy = raw[:1].numel() * raw.element_size() + call.state["suffix_bytes"][index]
            budget = self.chunk_memory or (2 ** 29 if raw.device.type == "cuda" else 2 ** 27)
            state["step"] = max(self.batch_size, budget // max(1, per_copy))
        with torch.inference_mode():
            for image in range(batch):
                ablate = active[image].nonzero().flatten()
                if len(ablate):
                    scores[image, ablate] = self._ablated_scores(
                        input_tensor[image:image + 1], image, index, channel_dim, ablate,
                        targets[image], value, state)
        # what the call did, for the caller to read
        self.used_prefix_once = state["prefix_once"]
        self.last_chunk_size = state["step"]
        self.fallback_reason = state["fallback_reason"]
        denominator = torch.where(original.abs() < 1e-7, torch.full_like(original, 1e-7), original)
        return (original[:, None] - scores) / denominator[:, None]

    def _ablated_scores(self, image: torch.Tensor, image_index: int, index: int,
                        channel_dim: int, ablate: torch.Tensor, target: Callable, value: float,
                        state: Dict[str, Any]) -> torch.Tensor:
        results, done = [], 0
        if state["prefix_once"] and not state["checked"]:
            # the first chunk of the call decides, with one unablated copy
            state["checked"] = True
            # the control copy counts towards the chunk: at most `step` copies a pass
            chunk = ablate[:state["step"] - 1]
            try:
                scores = self._run(image, index, channel_dim, chunk, target, value, True, state,
                                   control=True)
            except Exception as error:  # the full forwards below raise real errors again
                state["fallback_reason"] = f"{type(error).__name__}: {error}"
            else:
                expected = float(state["original"][image_index])
                if abs(float(scores[-1]) - expected) <= 1e-3 * max(1.0, abs(expected)):
                    results.append(scores[:-1])
                    done = len(chunk)
                else:
                    state["fallback_reason"] = "the unablated copy did not reproduce the score"
            if state["fallback_reason"] is not None:
                state.update(prefix_once=False, step=self.batch_size, buffer=None)
        for start, stop in self.chunks(len(ablate) - done, "AblationCAM", size=state["step"]):
            chunk = ablate[done + start:done + stop]
            results.append(self._run(image, index, channel_dim, chunk, target, value,
                                     state["prefix_once"], state))
        return torch.cat(results)

    def _run(self, image: torch.Tensor, index: int, channel_dim: int, chunk: torch.Tensor,
             target: Callable, value: float, prefix_once: bool, state: Dict[str, Any],
             control: bool = False) -> torch.Tensor:
        """Scores of the image with each channel of ``chunk`` ablated (plus,
        with ``control``, a last unablated copy)."""
        count = len(chunk) + int(control)
        rows = torch.arange(len(chunk), device=chunk.device)

        def replace(output: torch.Tensor) -> torch.Tensor:
            shape = (count,) + tuple(output.shape[1:])
            # one buffer for the copies of all chunks of the call: a fresh
            # one per chunk costs as much in page faults as the prefix
            buffer = state["buffer"]
            if (buffer is None or buffer.shape[0] < count or buffer.shape[1:] != shape[1:]
                    or buffer.dtype != output.dtype or buffer.device != output.device):
                buffer = state["buffer"] = torch.empty(shape, dtype=output.dtype,
                                                       device=output.device)
            copies = buffer[:count]
            copies.copy_(output.expand(shape))
            copies.movedim(channel_dim, 1)[rows, chunk] = value
            return copies

        x = image if prefix_once else image.expand((count,) + tuple(image.shape[1:]))
        with self.activations_and_grads.replace_output(index, replace):
            outputs = self.select_output(self.model(x))
        if len(outputs) != count:
            raise _PrefixMismatch(f"{len(outputs)} outputs for {count} copies")
        return self.target_scores([target] * count, outputs).float()
