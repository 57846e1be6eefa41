"""What the library knows about models; ``loading``: loading torchvision,
timm and Hugging Face models and checkpoints for every front-end.

The modules are imported by name (``from pytorch_grad_cam.models.loading
import load_model``); this package module imports none of them.
"""
