"""grad-cam 1.5.7's maps of torchvision's Faster R-CNN, stored for the tests.

    python bench/detection_parity.py          # writes tests/data/detection_reference_157.npz

Runs the Faster R-CNN recipe of grad-cam 1.5.7's tutorial under 1.5.7 itself
(``reference.run_reference``: a child process with the 1.5.7 source tree)
on a seeded ``fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)``
at 96 x 96 (the box regressions scaled by 0.01, so that the random
network's boxes stay near its anchors instead of being clipped to zero
width), a batch of two seeded random images, and one box target per image
(the image's detection whose shorter side is the longest):

- GradCAM at the four ``model.backbone.fpn.layer_blocks`` (tensors: 1.5.7
  cannot take gradients of the dict that ``model.backbone`` returns; their
  outputs are its pyramid levels ``'0'`` to ``'3'``);
- EigenCAM at ``model.backbone`` with ``fasterrcnn_reshape_transform``;
- AblationCAM at ``model.backbone`` with ``fasterrcnn_reshape_transform``,
  ``AblationLayerFasterRCNN()`` and ``ratio_channels_to_ablate=0.005`` (6 + 6 channels).

It stores the maps (float16), the channel weights (float32: GradCAM's are
of the order of 1e-6 here), the targets, and a
fingerprint of the model's detections (boxes, labels, scores), so that
``tests/models/test_detection.py`` can tell "the seeded model is not the one the
reference was made with" (another torchvision) from "our maps differ".
``SETUP`` below is repeated in tests/models/test_detection.py (``_parity_setup``);
change both together and rerun this script.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import run_reference  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "detection_reference_157.npz"

SETUP = '''
import torch
import torchvision

torch.set_num_threads(2)  # the tests compare with two threads (see tests/models/test_detection.py)
torch.manual_seed(0)
model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, min_size=96, max_size=96, box_score_thresh=0.0,
    box_detections_per_img=5, rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=20).eval()
with torch.no_grad():
    for layer in (model.rpn.head.bbox_pred, model.roi_heads.box_predictor.bbox_pred):
        layer.weight.mul_(0.01)
        layer.bias.mul_(0.01)
images = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    detections = model(images)
chosen = []
for d in detections:
    sides = torch.minimum(d["boxes"][:, 2] - d["boxes"][:, 0], d["boxes"][:, 3] - d["boxes"][:, 1])
    chosen.append(int(sides.argmax()))
target_boxes = [d["boxes"][i:i + 1].clone() for d, i in zip(detections, chosen)]
target_labels = [d["labels"][i:i + 1].clone() for d, i in zip(detections, chosen)]
'''

CODE = SETUP + '''
import numpy as np
from pytorch_grad_cam import AblationCAM, EigenCAM, GradCAM
from pytorch_grad_cam.ablation_layer import AblationLayerFasterRCNN
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from pytorch_grad_cam.utils.reshape_transforms import fasterrcnn_reshape_transform

targets = [FasterRCNNBoxScoreTarget(labels=l, bounding_boxes=b)
           for l, b in zip(target_labels, target_boxes)]
result = {}
for k, d in enumerate(detections):
    for key in ("boxes", "labels", "scores"):
        result[f"fingerprint_{key}_{k}"] = d[key].numpy()
result["target_boxes"] = torch.cat(target_boxes).numpy()
result["target_labels"] = torch.cat(target_labels).numpy()


def spy(cam, name):
    """Store the weights of every target layer (name_weights_0, _1, ...), in
    the order 1.5.7 computes them: the order in which the forward pass
    called the layers (the FPN calls layer_blocks 3, 2, 1, 0)."""
    original = cam.get_cam_weights
    calls = [0]

    def get_cam_weights(*args, **kwargs):
        weights = original(*args, **kwargs)
        result[f"{name}_weights_{calls[0]}"] = np.asarray(weights, dtype=np.float32)
        calls[0] += 1
        return weights
    cam.get_cam_weights = get_cam_weights


cam = GradCAM(model, target_layers=list(model.backbone.fpn.layer_blocks))
spy(cam, "gradcam")
result["gradcam"] = cam(images, targets)
cam = EigenCAM(model, target_layers=[model.backbone],
               reshape_transform=fasterrcnn_reshape_transform)
result["eigencam"] = cam(images, targets)
cam = AblationCAM(model, target_layers=[model.backbone],
                  reshape_transform=fasterrcnn_reshape_transform,
                  ablation_layer=AblationLayerFasterRCNN(), ratio_channels_to_ablate=0.005,
                  batch_size=8)
spy(cam, "ablationcam")
result["ablationcam"] = cam(images, targets)
'''


def main() -> None:
    arrays = run_reference(CODE)
    # the maps in float16 (values in [0, 1], steps of at most 2.4e-4), the rest as it is
    stored = {key: (value.astype(np.float16) if key in ("gradcam", "eigencam", "ablationcam")
                    else value) for key, value in arrays.items()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **stored)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): "
          + ", ".join(f"{k} {v.shape}" for k, v in stored.items()))


if __name__ == "__main__":
    main()
