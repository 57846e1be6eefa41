"""What the library knows about models.

- ``paths``: layer paths (``"layer4[-1]"``, ``"features.29"``) and
  :class:`~pytorch_grad_cam.models.paths.LayerError`;
- ``families``: the family table, the default target layers and token
  layout of each model family (torchvision, timm, Hugging Face, open_clip,
  the bundled EfficientNet-Lite0), and the reshape transform of a layout;
- ``tokens``: token layouts (the patch grid of a token sequence, prefix
  tokens, channels last) and the transforms that make them feature maps;
- ``probe``: the one forward pass with hooks that checks target layers or
  explores a model the table does not know;
- ``vit_families``: the Vision Transformer families whose attention the
  attention methods read (``find_transformer``);
- ``compiled``: models compiled with ``torch.compile`` and TorchScript models;
- ``loading``: loading torchvision, timm and Hugging Face models and
  checkpoints, for every front-end.

The modules are imported by name (``from pytorch_grad_cam.models.paths
import resolve_layer``); this package module imports none of them, so that
``utils.reshape_transforms`` can build on ``models.tokens`` without
importing the rest. The names of grad-cam's earlier modules
(``pytorch_grad_cam.layers``, ``layer_finder``, ``attention``) keep
working.
"""
