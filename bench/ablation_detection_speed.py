"""AblationCAM on torchvision's Faster R-CNN: grad-cam 1.5.7 and this library, time and maps.

    python bench/ablation_detection_speed.py --reference-python /work/venv-ref/bin/python \\
        [--height 240 --width 320] [--threads 2]

Runs the call of 1.5.7's object detection tutorial, ``AblationCAM(model,
target_layers=[model.backbone],
reshape_transform=fasterrcnn_reshape_transform,
ablation_layer=AblationLayerFasterRCNN(), ratio_channels_to_ablate=1.0)`` then
``cam(input_tensor, targets=[FasterRCNNBoxScoreTarget(labels, boxes)])``, on a
seeded ``fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)`` (its
transform keeps the image's size: ``min_size`` and ``max_size`` are the
image's sides; ``--proposals`` region proposals per image; box regressions
scaled by 0.01 as in bench/detection_parity.py so that the random network's
boxes stay near its anchors) and one seeded random image, with the target the
model's own best detection. 1.5.7 runs under ``reference.run_reference`` (a
child process with the 1.5.7 source tree), ours in this process; each times
the cam call only (the model, its first forward pass and the targets are made
before). Prints both times and the largest difference between the two maps.

Seen on a 2-core CPU, 96 x 128, 50 proposals, 2 threads, quiet machine:
1.5.7 37.9 s; ours 39.4 s before the target layer was bypassed on the
copies (the backbone ran on one image per chunk of 8 copies), 37.2 s after;
maps equal to 4.8e-7. At 160 x 224: 1.5.7 57.1 s, ours 61.3 s before and
52.3 s after (maps equal to 2.4e-6). The backbone's share grows with the
image: at the tutorial's default transform (800 pixels) it ran once per chunk
at full size.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's library
from reference import run_reference  # noqa: E402

SETUP = '''
import time
import warnings

import numpy as np
import torch
import torchvision

warnings.simplefilter("ignore")
torch.set_num_threads({threads})
torch.manual_seed(0)
model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
    weights=None, weights_backbone=None, min_size={height}, max_size={width},
    box_score_thresh=0.0, box_detections_per_img=5, rpn_pre_nms_top_n_test={proposals},
    rpn_post_nms_top_n_test={proposals}).eval()
with torch.no_grad():
    for layer in (model.rpn.head.bbox_pred, model.roi_heads.box_predictor.bbox_pred):
        layer.weight.mul_(0.01)
        layer.bias.mul_(0.01)
input_tensor = torch.rand(1, 3, {height}, {width}, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    detection = model(input_tensor)[0]
labels, boxes = detection["labels"][:1].clone(), detection["boxes"][:1].clone()
'''

CALL = '''
from pytorch_grad_cam import AblationCAM
from pytorch_grad_cam.ablation_layer import AblationLayerFasterRCNN
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from pytorch_grad_cam.utils.reshape_transforms import fasterrcnn_reshape_transform

cam = AblationCAM(model, target_layers=[model.backbone],
                  reshape_transform=fasterrcnn_reshape_transform,
                  ablation_layer=AblationLayerFasterRCNN(), ratio_channels_to_ablate=1.0)
targets = [FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)]
start = time.perf_counter()
grayscale_cam = cam(input_tensor, targets=targets)
seconds = time.perf_counter() - start
result = {"map": np.asarray(grayscale_cam, dtype=np.float64), "seconds": np.asarray(seconds)}
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", default=None,
                        help="the interpreter that runs grad-cam 1.5.7 (needs scikit-learn)")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--proposals", type=int, default=100,
                        help="the region proposals kept per image (torchvision: 1000)")
    parser.add_argument("--skip-reference", action="store_true", help="time ours only")
    args = parser.parse_args()
    setup = SETUP.format(threads=args.threads, height=args.height, width=args.width,
                         proposals=args.proposals)
    scope: dict = {}
    exec(compile(setup + CALL, "<ablation call>", "exec"), scope)
    here = scope["result"]
    print(f"ours:  {float(here['seconds']):.2f} s "
          f"(mode {scope['cam'].ablation_mode}, chunks of {scope['cam'].last_chunk_size})")
    if args.skip_reference:
        return
    reference = run_reference(setup + CALL, args.reference_python)
    print(f"1.5.7: {float(reference['seconds']):.2f} s")
    print(f"largest difference of the maps: {np.abs(reference['map'] - here['map']).max():.2e}")


if __name__ == "__main__":
    main()
