"""grad-cam 1.5.7's tutorial "Class Activation Maps for Object Detection
With Faster RCNN.ipynb" (EigenCAM and AblationCAM of
fasterrcnn_resnet50_fpn's backbone with ``fasterrcnn_reshape_transform``,
``FasterRCNNBoxScoreTarget`` and ``AblationLayerFasterRCNN``, and the maps
renormalised inside the boxes), run offline.

The tutorial's code is kept as written: its imports, ``predict``,
``draw_boxes``, ``coco_names``, ``COLORS``, ``renormalize_cam_in_bounding_boxes``,
``target_layers = [model.backbone]``,
``FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)``, the
``EigenCAM(...)`` and ``AblationCAM(...)`` calls with ``use_cuda=``,
``reshape_transform=``, ``ablation_layer=AblationLayerFasterRCNN()`` and
``ratio_channels_to_ablate=``. Substitutions:

- ``fasterrcnn_resnet50_fpn(pretrained=True)`` -> ``weights=None,
  weights_backbone=None``, built for the small image (``min_size=240,
  max_size=320``), with 100 / 20 region proposals before / after their
  non-maximum suppression instead of 1,000 / 1,000 and 5 detections per
  image instead of 100 (each of AblationCAM's passes runs the heads on the
  proposals). Its random box regressions are scaled by 0.01 (random
  regressions clip most boxes to zero width) and its classifier's bias for
  "cat" is raised by 10: an untrained detector scores every class about
  1/91, so nothing would pass the tutorial's 0.9 threshold.
- The photo both.png from GitHub -> ``skimage.data.chelsea()`` resized to
  3 x 240 x 320 (small, so that the test takes seconds on a CPU).
- AblationCAM is slow here: each ablated channel costs a forward pass of
  about a second on a CPU. Cell 10 (all 5 x 256 channels) and cells 12 and
  13 (``ratio_channels_to_ablate`` 0.1 and 0.01: 256 and 24 channels, as
  1.5.7 ablates the int(ratio x 1280) highest- and lowest-scoring
  channels) run as written in tests marked slow; the quick run makes the
  same call with ``ratio_channels_to_ablate=0.001`` (2 channels).
- ``warnings.filterwarnings('ignore')`` -> this module's ``filterwarnings``
  mark; ``Image.fromarray(...)`` displays -> assertions on the arrays.

EigenCAM's map is checked against 1.5.7's transform (|level| resized
bilinearly to the 'pool' level, concatenated) and Eigen-CAM's formula
computed by hand. 1.5.7 centres the activations before the SVD; this
package factorises them as they are, as the paper does (see
``pytorch_grad_cam.eigen_cam``), so the formula here is the paper's.
AblationCAM's maps are checked for 1.5.7's kind of result (1 x H x W
float32 in [0, 1]); its weights, against 1.5.7's stored maps, are checked in
tests/models/test_detection.py.
"""
import cv2
import numpy as np
import pytest
import skimage.data
import torch
import torchvision

from pytorch_grad_cam import AblationCAM, EigenCAM
from pytorch_grad_cam.ablation_layer import AblationLayerFasterRCNN
from pytorch_grad_cam.utils.image import (  # noqa: F401  (as the tutorial imports them)
    scale_accross_batch_and_channels,
    scale_cam_image,
    show_cam_on_image,
)
from pytorch_grad_cam.utils.model_targets import FasterRCNNBoxScoreTarget
from pytorch_grad_cam.utils.reshape_transforms import fasterrcnn_reshape_transform

pytestmark = pytest.mark.filterwarnings("ignore")  # the tutorial's warnings.filterwarnings('ignore')

HEIGHT, WIDTH = 240, 320
CAT = 17

coco_names = ['__background__', 'person', 'bicycle', 'car', 'motorcycle', 'airplane',
              'bus', 'train', 'truck', 'boat', 'traffic light', 'fire hydrant', 'N/A',
              'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep',
              'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'N/A', 'backpack', 'umbrella',
              'N/A', 'N/A', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard',
              'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard',
              'surfboard', 'tennis racket', 'bottle', 'N/A', 'wine glass', 'cup', 'fork',
              'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
              'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
              'potted plant', 'bed', 'N/A', 'dining table', 'N/A', 'N/A', 'toilet',
              'N/A', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone', 'microwave',
              'oven', 'toaster', 'sink', 'refrigerator', 'N/A', 'book', 'clock', 'vase',
              'scissors', 'teddy bear', 'hair drier', 'toothbrush']

# This will help us create a different color for each class
COLORS = np.random.uniform(0, 255, size=(len(coco_names), 3))


# ------------------------------------------------------- the tutorial's cell 2
def predict(input_tensor, model, device, detection_threshold):
    outputs = model(input_tensor)
    pred_classes = [coco_names[i] for i in outputs[0]['labels'].cpu().numpy()]
    pred_labels = outputs[0]['labels'].cpu().numpy()
    pred_scores = outputs[0]['scores'].detach().cpu().numpy()
    pred_bboxes = outputs[0]['boxes'].detach().cpu().numpy()

    boxes, classes, labels, indices = [], [], [], []
    for index in range(len(pred_scores)):
        if pred_scores[index] >= detection_threshold:
            boxes.append(pred_bboxes[index].astype(np.int32))
            classes.append(pred_classes[index])
            labels.append(pred_labels[index])
            indices.append(index)
    boxes = np.int32(boxes)
    return boxes, classes, labels, indices


def draw_boxes(boxes, labels, classes, image):
    for i, box in enumerate(boxes):
        color = COLORS[labels[i]]
        cv2.rectangle(
            image,
            (int(box[0]), int(box[1])),
            (int(box[2]), int(box[3])),
            color, 2
        )
        cv2.putText(image, classes[i], (int(box[0]), int(box[1] - 5)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8, color, 2,
                    lineType=cv2.LINE_AA)
    return image


# ------------------------------------------------------- the tutorial's cell 4
@pytest.fixture(scope="module")
def tutorial():
    """Cell 4: the model, the image, and the detections to explain."""
    torch.manual_seed(0)
    image = cv2.resize(skimage.data.chelsea(), (WIDTH, HEIGHT))
    image_float_np = np.float32(image) / 255
    # define the torchvision image transforms
    transform = torchvision.transforms.Compose([
        torchvision.transforms.ToTensor(),
    ])

    input_tensor = transform(image)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    input_tensor = input_tensor.to(device)
    # Add a batch dimension:
    input_tensor = input_tensor.unsqueeze(0)

    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=HEIGHT, max_size=WIDTH,
        rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=20, box_detections_per_img=5)
    with torch.no_grad():  # substitutions: see the module's docstring
        for layer in (model.rpn.head.bbox_pred, model.roi_heads.box_predictor.bbox_pred):
            layer.weight.mul_(0.01)
            layer.bias.mul_(0.01)
        model.roi_heads.box_predictor.cls_score.bias[CAT] += 10
    model.eval().to(device)

    # Run the model and display the detections
    boxes, classes, labels, indices = predict(input_tensor, model, device, 0.9)
    image = draw_boxes(boxes, labels, classes, image)
    return {"model": model, "input_tensor": input_tensor, "image_float_np": image_float_np,
            "image": image, "boxes": boxes, "classes": classes, "labels": labels,
            "indices": indices}


def tutorial_renormalizer(labels, classes):
    """The tutorial's cell 8, which reads ``labels`` and ``classes`` from
    the notebook's globals (here: from this function's arguments)."""
    def renormalize_cam_in_bounding_boxes(boxes, image_float_np, grayscale_cam):
        """Normalize the CAM to be in the range [0, 1]
        inside every bounding boxes, and zero outside of the bounding boxes. """
        renormalized_cam = np.zeros(grayscale_cam.shape, dtype=np.float32)
        images = []
        for x1, y1, x2, y2 in boxes:
            img = renormalized_cam * 0
            img[y1:y2, x1:x2] = scale_cam_image(grayscale_cam[y1:y2, x1:x2].copy())
            images.append(img)

        renormalized_cam = np.max(np.float32(images), axis=0)
        renormalized_cam = scale_cam_image(renormalized_cam)
        eigencam_image_renormalized = show_cam_on_image(image_float_np, renormalized_cam,
                                                        use_rgb=True)
        image_with_bounding_boxes = draw_boxes(boxes, labels, classes, eigencam_image_renormalized)
        return image_with_bounding_boxes
    return renormalize_cam_in_bounding_boxes


def eigencam_by_hand(model, input_tensor):
    """1.5.7's fasterrcnn_reshape_transform and Eigen-CAM (the paper's
    formula: the uncentred activations projected on their first right
    singular vector, signed to sum to >= 0), ReLU, min-max, resized."""
    saved = []
    handle = model.backbone.register_forward_hook(lambda m, args, out: saved.append(out))
    try:
        with torch.no_grad():
            model(input_tensor)
    finally:
        handle.remove()
    levels = saved[0]
    size = levels["pool"].shape[-2:]
    a = torch.cat([torch.nn.functional.interpolate(v.abs(), size, mode="bilinear")
                   for v in levels.values()], dim=1)[0].double().numpy()
    points = a.reshape(a.shape[0], -1).T
    projection = points @ np.linalg.svd(points, full_matrices=False)[2][0]
    projection = np.maximum(projection if projection.sum() >= 0 else -projection, 0)
    cam = projection.reshape(a.shape[1:])
    cam = np.float32((cam - cam.min()) / (1e-7 + cam.max() - cam.min()))
    cam = cv2.resize(cam, (input_tensor.shape[-1], input_tensor.shape[-2]))
    return (cam - cam.min()) / (1e-7 + cam.max())


def assert_cam(grayscale_cam):
    assert grayscale_cam.shape == (HEIGHT, WIDTH) and grayscale_cam.dtype == np.float32
    assert grayscale_cam.min() == pytest.approx(0, abs=1e-6)
    assert grayscale_cam.max() == pytest.approx(1, abs=1e-5)


def assert_overlay(overlay):
    assert overlay.shape == (HEIGHT, WIDTH, 3) and overlay.dtype == np.uint8


def test_the_detections_are_confident_cats(tutorial):
    boxes, classes, labels = tutorial["boxes"], tutorial["classes"], tutorial["labels"]
    assert boxes.dtype == np.int32 and boxes.ndim == 2 and boxes.shape[1] == 4
    count = len(boxes)
    assert 1 <= count <= 5  # box_detections_per_img=5
    assert classes == ["cat"] * count and [int(label) for label in labels] == [CAT] * count
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    assert_overlay(tutorial["image"])


def test_eigencam_and_the_renormalised_maps_as_the_tutorial_makes_them(tutorial):
    model, input_tensor = tutorial["model"], tutorial["input_tensor"]
    boxes, labels, classes = tutorial["boxes"], tutorial["labels"], tutorial["classes"]
    image_float_np = tutorial["image_float_np"]
    # ------------------------------------------------------------------ cell 6
    target_layers = [model.backbone]
    targets = [FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)]
    cam = EigenCAM(model,
                   target_layers,
                   use_cuda=torch.cuda.is_available(),
                   reshape_transform=fasterrcnn_reshape_transform)

    grayscale_cam = cam(input_tensor, targets=targets)
    # Take the first image in the batch:
    grayscale_cam = grayscale_cam[0, :]
    cam_image = show_cam_on_image(image_float_np, grayscale_cam, use_rgb=True)
    # And lets draw the boxes again:
    image_with_bounding_boxes = draw_boxes(boxes, labels, classes, cam_image)

    assert_cam(grayscale_cam)
    assert_overlay(image_with_bounding_boxes)
    expected = eigencam_by_hand(model, input_tensor)
    assert expected.std() > 0.05  # a map with structure, not a constant
    np.testing.assert_allclose(grayscale_cam, expected, atol=1e-4)
    assert not any(m._forward_hooks for m in model.modules()) and not model.training

    # ------------------------------------------------------------------ cell 8
    renormalize_cam_in_bounding_boxes = tutorial_renormalizer(labels, classes)
    renormalized = renormalize_cam_in_bounding_boxes(boxes, image_float_np, grayscale_cam)
    assert_overlay(renormalized)


@pytest.mark.parametrize("ratio_channels_to_ablate", [
    pytest.param(0.1, marks=pytest.mark.slow),  # cell 12: 256 passes, minutes on a CPU
    pytest.param(0.01, marks=pytest.mark.slow),  # cell 13: 24 passes, about half a minute
    0.001,  # 2 passes: the tutorial's call with a smaller share, to stay fast
])
def test_ablationcam_skipping_channels_as_cells_12_and_13(tutorial, ratio_channels_to_ablate):
    model, input_tensor = tutorial["model"], tutorial["input_tensor"]
    boxes, labels, classes = tutorial["boxes"], tutorial["labels"], tutorial["classes"]
    image_float_np = tutorial["image_float_np"]
    target_layers = [model.backbone]
    targets = [FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)]
    # ------------------------------------------------------------- cells 12, 13
    cam = AblationCAM(model,
                      target_layers,
                      use_cuda=torch.cuda.is_available(),
                      reshape_transform=fasterrcnn_reshape_transform,
                      ablation_layer=AblationLayerFasterRCNN(),
                      ratio_channels_to_ablate=ratio_channels_to_ablate)

    grayscale_cam = cam(input_tensor, targets=targets)[0, :]
    renormalize_cam_in_bounding_boxes = tutorial_renormalizer(labels, classes)
    overlay = renormalize_cam_in_bounding_boxes(boxes, image_float_np, grayscale_cam)
    assert_cam(grayscale_cam)
    assert_overlay(overlay)
    assert grayscale_cam.std() > 0.01
    assert not any(m._forward_hooks for m in model.modules()) and not model.training
    assert model.backbone is target_layers[0]  # the ablation layer was swapped back out


@pytest.mark.slow
def test_ablationcam_of_every_channel_as_cell_10(tutorial):
    model, input_tensor = tutorial["model"], tutorial["input_tensor"]
    boxes, labels, classes = tutorial["boxes"], tutorial["labels"], tutorial["classes"]
    image_float_np = tutorial["image_float_np"]
    target_layers = [model.backbone]
    targets = [FasterRCNNBoxScoreTarget(labels=labels, bounding_boxes=boxes)]
    # ------------------------------------------------------------------ cell 10
    cam = AblationCAM(model,
                      target_layers,
                      use_cuda=torch.cuda.is_available(),
                      reshape_transform=fasterrcnn_reshape_transform,
                      ablation_layer=AblationLayerFasterRCNN())

    grayscale_cam = cam(input_tensor, targets=targets)[0, :]
    renormalize_cam_in_bounding_boxes = tutorial_renormalizer(labels, classes)
    assert_cam(grayscale_cam)
    assert_overlay(renormalize_cam_in_bounding_boxes(boxes, image_float_np, grayscale_cam))
    assert grayscale_cam.std() > 0.01
