from pytorch_grad_cam.utils import image, model_targets, reshape_transforms
from pytorch_grad_cam.utils.image import deprocess_image, preprocess_image, show_cam_on_image

__all__ = ["image", "model_targets", "reshape_transforms", "deprocess_image", "preprocess_image",
           "show_cam_on_image"]
