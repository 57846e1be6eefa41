"""What the library knows about target layers, under the names it had
before it moved to ``pytorch_grad_cam.models``: layer paths
(``models.paths``: :func:`resolve_layer`, :class:`LayerError`), the family
table (``models.families``: :data:`DEFAULT_LAYERS`,
:func:`default_target_layers`, :func:`reshape_transform_for`), token
layouts (``models.tokens``: :func:`vit_tokens_to_maps`) and the layer
probe (``models.probe``: :func:`probe_target_layers`)::

    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.layers import (default_target_layers, reshape_transform_for,
                                         resolve_layers)

    paths, layout = default_target_layers(model)        # (["layer4[-1]"], None)
    cam = GradCAM(model, target_layers=resolve_layers(model, paths),
                  reshape_transform=reshape_transform_for(model, layout))
"""
from pytorch_grad_cam.models.families import (
    DEFAULT_LAYERS,
    LAYOUTS,
    FamilyLayers,
    default_layers_row,
    default_target_layers,
    family_layout,
    family_of,
    family_rows,
    reshape_transform_for,
    vit_patch_grid,
)
from pytorch_grad_cam.models.paths import LayerError, resolve_layer, resolve_layers
from pytorch_grad_cam.models.probe import LayerProbe, probe_target_layers
from pytorch_grad_cam.models.tokens import ReshapeTransform, vit_tokens_to_maps

# names this module imported before its code moved, still importable from it
from pytorch_grad_cam.scoring import describe, model_device, select_output  # noqa: F401
from pytorch_grad_cam.utils.layer_outputs import describe_output  # noqa: F401
from pytorch_grad_cam.utils.reshape_transforms import (  # noqa: F401
    combine_levels,
    fasterrcnn_reshape_transform,
    swinT_reshape_transform,
    vit_reshape_transform,
)

__all__ = [
    "DEFAULT_LAYERS",
    "LAYOUTS",
    "FamilyLayers",
    "LayerError",
    "LayerProbe",
    "ReshapeTransform",
    "default_layers_row",
    "default_target_layers",
    "family_layout",
    "family_of",
    "family_rows",
    "probe_target_layers",
    "reshape_transform_for",
    "resolve_layer",
    "resolve_layers",
    "vit_patch_grid",
    "vit_tokens_to_maps",
]
