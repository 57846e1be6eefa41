from collections.abc import Callable
from typing import Any

import torch

from pytorch_grad_cam.ablation_layer import AblationLayer
from pytorch_grad_cam.activations_and_gradients import (
    hook_handles,
    is_structured,
    map_output,
    output_leaves,
    owned_hooks,
    rebuild_output,
)
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.call_context import PerThread, current_call
from pytorch_grad_cam.model_state import all_modules
from pytorch_grad_cam.registry import register_method
from pytorch_grad_cam.scoring import repeat_rows


class _PrefixMismatch(Exception):
    pass


# the ways the ablated copies can run, fastest first (see AblationCAM)
_NEXT_MODE = {"prefix": "layer", "layer": "full"}

#: one tensor of the raw output whose channels are channels of the maps:
#: (its position in output_leaves order, its channel axis, the index of its
#: first channel in the maps, its number of channels)
_Part = tuple[int, int, int, int]


def _channel_leaves(reshape_transform: Callable | None, raw: Any) -> list[int]:
    """The positions of the raw output's tensors whose channels make up the
    maps' channels, in order: what the transform says
    (``channel_leaves``), else all of them (a transform that concatenates
    the levels)."""
    said = getattr(reshape_transform, "channel_leaves", None)
    if said is not None:
        return list(said(raw))
    return list(range(len(output_leaves(raw))))


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
    reproduce the image's score, the copies run as forward passes of the
    repeated input instead, ``batch_size`` images at a time: first with
    the target layer not run (the layers before it run on every copy, its
    output recorded for the image, ablated, stands in, as in grad-cam
    1.5.7), and if that fails too, as full forward passes
    (``ablation_mode`` is ``"prefix"``, ``"layer"`` or ``"full"``;
    ``used_prefix_once`` and ``fallback_reason`` tell what ran and why:
    each thread reads those of its own last call).
    In the first two ways the target layer itself never runs on the copies.
    Detection models, whose heads take as many images as the input has,
    use the second way: the backbone does not run on the copies. ``prefix_once=False``
    always runs full forward passes.

    Chunk size: the prefix runs once per chunk, so large chunks are what
    makes it fast. Unless ``batch_size`` is given, a chunk takes as many
    copies as fit in ``chunk_memory`` bytes (default 128 MiB on a CPU,
    512 MiB on a GPU), counting per copy its target-layer output and the
    largest output of a layer after it (measured in the first forward pass).

    ``zero_channel_shortcut=True`` (default): a channel that already equals
    the ablation value everywhere is not run; ablating it changes nothing,
    its weight is exactly 0.

    ``ratio_channels_to_ablate`` < 1 ablates only that share of the channels
    (by default those with the largest mean activation; the ablation
    layer's ``select_channels`` decides); the others get weight 0.

    A target layer that returns a dict, tuple or list of feature maps (a
    feature pyramid) is explained through its reshape transform, which
    concatenates the levels (``fasterrcnn_reshape_transform``,
    ``combine_levels``) or selects one (``select_output_key``): channel k
    of the maps is ablated in the level it comes from. grad-cam 1.5.7's
    Faster R-CNN recipe: ``ablation_layer=AblationLayerFasterRCNN()``.
    """

    uses_gradients = False

    # what the calling thread's last call did (None in a thread before its
    # first call); each thread reads its own
    #: how the ablated copies ran: "prefix" (only the layers after the
    #: target layer), "layer" (the target layer once, the layers before it
    #: on every copy) or "full"
    ablation_mode: PerThread[str | None] = PerThread(None)
    #: whether only the layers after the target layer ran on the copies
    used_prefix_once: PerThread[bool | None] = PerThread(None)
    #: why the fastest way was given up (None if it was not)
    fallback_reason: PerThread[str | None] = PerThread(None)
    #: ablated copies per chunk
    last_chunk_size: PerThread[int | None] = PerThread(None)

    def __init__(self, model: torch.nn.Module,
                 target_layers: list[torch.nn.Module] | None = None,
                 reshape_transform: Callable | None = None,
                 ablation_layer: AblationLayer | None = None, batch_size: int | None = None,
                 ratio_channels_to_ablate: float = 1.0,
                 prefix_once: bool = True, zero_channel_shortcut: bool = True,
                 chunk_memory: int | None = None, **kwargs: Any) -> None:
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

    def record(self, input_tensor: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """The recording forward pass; it also measures, for every target
        layer, the largest output of a layer that runs after it (bytes per
        image, kept in the call's state): the ablated copies go through
        those layers."""
        layers = {id(layer): i for i, layer in enumerate(self.target_layers)}
        sizes: list[tuple[int, int]] = []
        fired: dict[int, tuple[int, int | None]] = {}

        def measure(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if not mine():
                return  # another thread's forward pass
            index = layers.get(id(module))
            leaves = output_leaves(output)
            if index is not None and leaves:
                # its last call counts; a structure counts by its first tensor
                fired[index] = (len(sizes), leaves[0].data_ptr())
                return
            for tensor in leaves:
                sizes.append((tensor.data_ptr(), tensor.numel() * tensor.element_size()))

        with owned_hooks() as mine, hook_handles() as handles:
            for module in all_modules(self.model):
                handles.append(module.register_forward_hook(measure))
            result = super().record(input_tensor)
        suffix_bytes = []
        for index in range(len(self.target_layers)):
            start, pointer = fired.get(index, (len(sizes), None))
            # the modules that contain the target layer return its output itself
            after = [size for ptr, size in sizes[start:] if ptr != pointer]
            suffix_bytes.append(max(after, default=0) // input_tensor.shape[0])
        current_call().state["suffix_bytes"] = suffix_bytes
        return result

    def _channel_parts(self, raw: Any, activations: torch.Tensor) -> list[_Part]:
        """Where each channel of the maps ``activations`` (B x C x H x W)
        lies in the raw output of the layer (a tensor or a structure)."""
        channels = activations.shape[1]
        if isinstance(raw, torch.Tensor):
            return [(0, self._channel_dim(raw, channels), 0, channels)]
        leaves = output_leaves(raw)
        positions = _channel_leaves(self.reshape_transform, raw)
        if len(positions) == 1:
            leaf = leaves[positions[0]]
            same = tuple(leaf.shape) == tuple(activations.shape)
            return [(positions[0], 1 if same else self._channel_dim(leaf, channels), 0, channels)]
        axis = self.ablation_layer.channel_dim if self.ablation_layer is not None else 1
        parts: list[_Part] = []
        offset = 0
        for position in positions:
            leaf = leaves[position]
            dim = axis % leaf.dim()
            parts.append((position, dim, offset, leaf.shape[dim]))
            offset += leaf.shape[dim]
        if offset != channels:
            raise ValueError(
                f"the maps of the target layer have {channels} channels, but its output's "
                f"tensors that the reshape transform combines have {offset} on axis {axis}; "
                "AblationCAM ablates channel k of the maps in the tensor it comes from, so the "
                "transform must concatenate the tensors' channels in order (like "
                "combine_levels and fasterrcnn_reshape_transform) or say where they come from "
                "with a channel_leaves(output) method")
        return parts

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: torch.nn.Module,
                        targets: list[Callable], activations: torch.Tensor,
                        grads: torch.Tensor | None) -> torch.Tensor:
        call = current_call()
        index = call.layer_index
        raw = call.activations[index]
        batch, channels = activations.shape[:2]
        parts = self._channel_parts(raw, activations)
        leaves = output_leaves(raw)
        value = self.ablation_layer.value if self.ablation_layer is not None else 0.0
        per_channel = [leaves[position].movedim(dim, 1).flatten(2)  # B x C_j x N_j
                       for position, dim, _, _ in parts]
        if self.zero_channel_shortcut:
            active = torch.cat([(x != value).any(dim=2) for x in per_channel], dim=1)
        else:
            active = torch.ones((batch, channels), dtype=torch.bool, device=activations.device)
        if self.ratio_channels_to_ablate < 1:
            means = torch.cat([x.float().mean(dim=2) for x in per_channel], dim=1)
            selector = self.ablation_layer if self.ablation_layer is not None else AblationLayer()
            active &= selector.select_channels(activations, means,
                                               self.ratio_channels_to_ablate).to(active.device)
        original = self.target_scores(targets, call.outputs).float()
        scores = original[:, None].repeat(1, channels)
        # per call: the path taken, the chunk size and the buffers for the copies
        state: dict[str, Any] = {"mode": "prefix" if self.prefix_once else "full",
                                 "checked": False, "original": original, "buffers": {},
                                 "step": self.batch_size, "fallback_reason": None}
        if self.prefix_once and self._batch_size is None:
            raw_bytes = sum(leaf[:1].numel() * leaf.element_size() for leaf in leaves)
            per_copy = raw_bytes + call.state["suffix_bytes"][index]
            device = activations.device
            budget = self.chunk_memory or (2 ** 29 if device.type == "cuda" else 2 ** 27)
            state["step"] = max(self.batch_size, budget // max(1, per_copy))
        # the rows of an image explained for K targets share its input and
        # activations: its ablated copies run once, scored for all K targets
        group = call.group
        with torch.inference_mode():
            for image in range(0, batch, group):
                ablate = active[image].nonzero().flatten()
                if len(ablate):
                    scores[image:image + group, ablate.to(scores.device)] = self._ablated_scores(
                        input_tensor[image:image + 1], image, index, parts, ablate,
                        targets[image:image + group], value, state).T.to(scores.device)
        # what the call did, for the calling thread to read
        self.ablation_mode = state["mode"]
        self.used_prefix_once = state["mode"] == "prefix"
        self.last_chunk_size = state["step"]
        self.fallback_reason = state["fallback_reason"]
        denominator = torch.where(original.abs() < 1e-7, torch.full_like(original, 1e-7), original)
        return (original[:, None] - scores) / denominator[:, None]

    def _ablated_scores(self, image: torch.Tensor, image_index: int, index: int,
                        parts: list[_Part], ablate: torch.Tensor, targets: list[Callable],
                        value: float, state: dict[str, Any]) -> torch.Tensor:
        """copies x targets: the scores of the image (row ``image_index``)
        with each channel of ``ablate`` ablated, for each of its targets."""
        results, done = [], 0
        while state["mode"] != "full" and not state["checked"]:
            # the first chunk of the call decides, with one unablated copy;
            # the control copy counts towards the chunk, which is at most
            # batch_size copies: a way that fails costs no more than that
            chunk = ablate[:min(state["step"], self.batch_size) - 1]
            reason = None
            try:
                scores = self._run(image, image_index, index, parts, chunk, targets, value,
                                   state["mode"], state, control=True)
            except Exception as error:  # the full forwards below raise real errors again
                reason = f"{type(error).__name__}: {error}"
            else:
                expected = state["original"][image_index:image_index + len(targets)]
                tolerance = 1e-3 * expected.abs().clamp_min(1.0)
                if bool(((scores[-1] - expected).abs() <= tolerance).all()):
                    state["checked"] = True
                    results.append(scores[:-1])
                    done = len(chunk)
                else:
                    reason = "the unablated copy did not reproduce the score"
            if reason is not None:
                if state["fallback_reason"] is None:
                    state["fallback_reason"] = reason  # why the fastest way failed
                state.update(mode=_NEXT_MODE[state["mode"]], step=self.batch_size, buffers={})
        for start, stop in self.chunks(len(ablate) - done, "AblationCAM", size=state["step"]):
            chunk = ablate[done + start:done + stop]
            results.append(self._run(image, image_index, index, parts, chunk, targets, value,
                                     state["mode"], state))
        return torch.cat(results)

    def _run(self, image: torch.Tensor, image_index: int, index: int, parts: list[_Part],
             chunk: torch.Tensor, targets: list[Callable], value: float, mode: str,
             state: dict[str, Any], control: bool = False) -> torch.Tensor:
        """Scores (copies x targets) of the image with each channel of
        ``chunk`` ablated (plus, with ``control``, a last unablated copy). In the modes "prefix" and
        "layer" the target layer does not run: its output recorded for the
        image stands in (as grad-cam 1.5.7, which replaces the layer by
        one that returns it)."""
        count = len(chunk) + int(control)
        rows = torch.arange(len(chunk), device=chunk.device)
        # the rows and channels to ablate in each part of the output
        where = []
        for position, dim, offset, size in parts:
            if len(parts) == 1:
                where.append((position, dim, rows, chunk))
                continue
            inside = (chunk >= offset) & (chunk < offset + size)
            where.append((position, dim, rows[inside], chunk[inside] - offset))

        def replace(output: Any) -> Any:
            # one buffer per tensor for the copies of all chunks of the call:
            # a fresh one per chunk costs as much in page faults as the prefix
            buffers = state["buffers"]
            copies = []
            for position, leaf in enumerate(output_leaves(output)):
                shape = (count,) + tuple(leaf.shape[1:])
                buffer = buffers.get(position)
                if (buffer is None or buffer.shape[0] < count or buffer.shape[1:] != shape[1:]
                        or buffer.dtype != leaf.dtype or buffer.device != leaf.device):
                    buffer = buffers[position] = torch.empty(shape, dtype=leaf.dtype,
                                                             device=leaf.device)
                leaf_copies = buffer[:count]
                leaf_copies.copy_(leaf.expand(shape))
                copies.append(leaf_copies)
            for position, dim, part_rows, part_channels in where:
                part_rows = part_rows.to(copies[position].device)
                part_channels = part_channels.to(copies[position].device)
                copies[position].movedim(dim, 1)[part_rows, part_channels] = value
            return rebuild_output(output, copies) if is_structured(output) else copies[0]

        x = image if mode == "prefix" else image.expand((count,) + tuple(image.shape[1:]))
        call = current_call()
        recording = call.recording
        assert recording is not None  # the recording pass of this call
        recorded = None if mode == "full" else \
            map_output(lambda leaf: leaf[image_index:image_index + 1], call.activations[index])
        with recording.replace_output(index, replace, recorded):
            outputs = self.select_output(self.model(x))
        if len(outputs) != count:
            raise _PrefixMismatch(f"{len(outputs)} outputs for {count} copies")
        group = len(targets)
        return self.target_scores(targets * count, repeat_rows(outputs, group)).float().reshape(
            count, group)
