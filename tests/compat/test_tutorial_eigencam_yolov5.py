"""grad-cam 1.5.7's tutorial "EigenCAM for YOLO5.ipynb" (EigenCAM of a
torch.hub YOLOv5 model's second-to-last layer, and the maps renormalised
inside the detected boxes), run offline.

The tutorial's code is kept as written: its imports, ``parse_detections``,
``draw_detections``, ``renormalize_cam_in_bounding_boxes``,
``target_layers = [model.model.model.model[-2]]``,
``EigenCAM(model, target_layers, use_cuda=False)``, ``cam(tensor)[0, :, :]``
and ``show_cam_on_image(img, grayscale_cam, use_rgb=True)``. (The notebook
was last changed upstream by a commit that removed ``use_cuda``; its code
cells are taken from the last version whose text is available, which
passes ``use_cuda=False``; the call without it is run too.)
Substitutions:

- ``torch.hub.load('ultralytics/yolov5', 'yolov5s', pretrained=True)`` ->
  ``hub_yolov5()`` below: a small, untrained model with the hub model's
  nesting and returns. ``AutoShape`` (``model``) takes a list of H x W x 3
  uint8 images and returns a ``Detections`` object whose ``pandas().xyxy``
  is one DataFrame per image (xmin, ymin, xmax, ymax, confidence, class,
  name), or a B x 3 x H x W tensor, which it hands to
  ``DetectMultiBackend`` (``model.model``), which returns what YOLOv5's
  ``DetectMultiBackend`` returns for a PyTorch model: a list
  ``[B x N x 85 predictions, [the feature maps of the levels]]``.
  ``model.model.model.model`` is the ``DetectionModel``'s list of layers;
  ``[-2]`` is the last layer before ``Detect``. Its detection head's
  objectness and "dog" biases are raised (an untrained head is unsure of
  everything) and it keeps its 5 most confident detections (the hub model
  keeps up to 1,000), so that the boxes are few and confident.
- The photo of puppies from Wikimedia -> ``skimage.data.chelsea()``,
  resized to 640 x 640 as the tutorial resizes its photo.
- ``warnings.filterwarnings('ignore')`` -> this module's ``filterwarnings``
  mark; ``Image.fromarray(...)`` displays -> assertions on the arrays.

The map is checked against Eigen-CAM's formula computed by hand (the
projection of the layer's activations on their first right singular
vector, ReLU, min-max normalisation, ``cv2.resize`` to the input size). 1.5.7
centres the activations before the SVD (and, with no ``targets``, raises a
TypeError on ``cam(tensor)``: its ``targets`` has no default); this
package factorises them as they are, as the paper does (see
``pytorch_grad_cam.eigen_cam``), so the formula here is the paper's.
"""
import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
import torchvision
import torchvision.transforms as transforms
from torch import nn

from pytorch_grad_cam import EigenCAM
from pytorch_grad_cam.utils.image import scale_cam_image, show_cam_on_image

pytestmark = pytest.mark.filterwarnings("ignore")  # the tutorial's warnings.filterwarnings('ignore')

COCO_NAMES = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
              "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
              "dog"] + [f"class{i}" for i in range(17, 80)]
DOG = 16


# ------------------------------------------------- a hub-style YOLOv5, untrained
class Conv(nn.Module):
    """YOLOv5's Conv: convolution, batch norm, SiLU."""

    def __init__(self, c1, c2, k=3, s=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()
        self.f = -1  # the layer its input comes from, as YOLOv5's layers say

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Detect(nn.Module):
    """YOLOv5's Detect in eval mode: (B x N x (5 + classes) boxes in pixels,
    sigmoid scores; the raw feature maps of each level)."""

    anchors = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119))

    def __init__(self, channels=(16, 32), strides=(8, 16), nc=80):
        super().__init__()
        self.f, self.no, self.na, self.strides = [2, 4], nc + 5, 3, strides
        self.m = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in channels)
        with torch.no_grad():  # an untrained head, sure of some objects and of "dog"
            for conv in self.m:
                conv.bias.view(self.na, self.no)[:, 4] += 3.0
                conv.bias.view(self.na, self.no)[:, 5 + DOG] += 3.0

    def forward(self, xs):
        z, raw = [], []
        for i, (conv, stride) in enumerate(zip(self.m, self.strides)):
            x = conv(xs[i])
            b, _, ny, nx = x.shape
            x = x.view(b, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            raw.append(x)
            y = x.sigmoid()
            yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
            grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()
            anchor = torch.tensor(self.anchors[i], dtype=torch.float32).view(1, self.na, 1, 1, 2)
            xy = (y[..., :2] * 2 - 0.5 + grid) * stride
            wh = (y[..., 2:4] * 2) ** 2 * anchor
            z.append(torch.cat((xy, wh, y[..., 4:]), -1).view(b, -1, self.no))
        return torch.cat(z, 1), raw


class DetectionModel(nn.Module):
    """YOLOv5's DetectionModel: ``model`` is the list of layers; a layer
    takes the output of the layers its ``f`` names (-1: the one before)."""

    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(Conv(3, 8, 3, 2), Conv(8, 16, 3, 2), Conv(16, 16, 3, 2),
                                   Conv(16, 32, 3, 2), Conv(32, 32, 3, 1), Detect())

    def forward(self, x):
        outputs = []
        for layer in self.model:
            if layer.f != -1:
                x = [outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x)
        return x


class DetectMultiBackend(nn.Module):
    """YOLOv5's DetectMultiBackend for a PyTorch model: the model's tuple as
    a list."""

    def __init__(self):
        super().__init__()
        self.model = DetectionModel()

    def forward(self, im):
        y = self.model(im)
        return [y[0], y[1]]


class Detections:
    """YOLOv5's Detections: ``pandas().xyxy`` is one DataFrame per image."""

    def __init__(self, pred, names):
        self.pred, self.names = pred, names

    def pandas(self):
        columns = ["xmin", "ymin", "xmax", "ymax", "confidence", "class", "name"]
        self.xyxy = [pd.DataFrame([row.tolist() + [self.names[int(row[5])]] for row in p],
                                  columns=columns) for p in self.pred]
        for frame in self.xyxy:
            frame["class"] = frame["class"].astype(int)
        return self


class AutoShape(nn.Module):
    """YOLOv5's AutoShape: a tensor goes to the model as it is; a list of
    H x W x 3 uint8 images is resized to the model's input, and the
    detections come back, after non-maximum suppression, in the images'
    pixels as ``Detections``."""

    conf, iou, max_det, size = 0.25, 0.45, 5, 640

    def __init__(self):
        super().__init__()
        self.model = DetectMultiBackend()
        self.names = COCO_NAMES

    def forward(self, ims):
        if isinstance(ims, torch.Tensor):
            return self.model(ims)
        batch = torch.stack([torch.from_numpy(cv2.resize(im, (self.size, self.size))).permute(2, 0, 1)
                             for im in ims]).float() / 255
        with torch.no_grad():
            prediction = self.model(batch)[0]
        pred = []
        for im, p in zip(ims, prediction):
            scores, classes = (p[:, 5:] * p[:, 4:5]).max(dim=1)
            keep = scores > self.conf
            xywh, scores, classes = p[keep, :4], scores[keep], classes[keep]
            boxes = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
            kept = torchvision.ops.batched_nms(boxes, scores, classes, self.iou)[:self.max_det]
            bounds = torch.tensor([im.shape[1], im.shape[0]] * 2)  # clipped to the image
            boxes = torch.minimum((boxes[kept] * bounds / self.size).clamp(min=0), bounds)
            pred.append(torch.cat((boxes, scores[kept, None], classes[kept, None].float()), 1))
        return Detections(pred, self.names)


def hub_yolov5():
    """What torch.hub.load('ultralytics/yolov5', 'yolov5s') returns, small
    and untrained."""
    return AutoShape()


def eigencam_by_hand(layer_output, size):
    """Eigen-CAM (the paper's formula) for the first image: the activations
    (positions x channels) projected on their first right singular vector,
    signed to sum to >= 0, ReLU, min-max normalised, resized."""
    a = layer_output[0].detach().double().numpy()
    points = a.reshape(a.shape[0], -1).T
    projection = points @ np.linalg.svd(points, full_matrices=False)[2][0]
    projection = np.maximum(projection if projection.sum() >= 0 else -projection, 0)
    cam = projection.reshape(a.shape[1:])
    cam = np.float32((cam - cam.min()) / (1e-7 + cam.max() - cam.min()))
    cam = cv2.resize(cam, size)
    return (cam - cam.min()) / (1e-7 + cam.max())


# ------------------------------------------------------------------ the tutorial
def test_the_tutorial_runs_unchanged_and_gives_eigencam_maps_renormalised_in_the_boxes():
    # ------------------------------------------------------------------ cell 1
    COLORS = np.random.uniform(0, 255, size=(80, 3))

    def parse_detections(results):
        detections = results.pandas().xyxy[0]
        detections = detections.to_dict()
        boxes, colors, names = [], [], []

        for i in range(len(detections["xmin"])):
            confidence = detections["confidence"][i]
            if confidence < 0.2:
                continue
            xmin = int(detections["xmin"][i])
            ymin = int(detections["ymin"][i])
            xmax = int(detections["xmax"][i])
            ymax = int(detections["ymax"][i])
            name = detections["name"][i]
            category = int(detections["class"][i])
            color = COLORS[category]

            boxes.append((xmin, ymin, xmax, ymax))
            colors.append(color)
            names.append(name)
        return boxes, colors, names

    def draw_detections(boxes, colors, names, img):
        for box, color, name in zip(boxes, colors, names):
            xmin, ymin, xmax, ymax = box
            cv2.rectangle(
                img,
                (xmin, ymin),
                (xmax, ymax),
                color,
                2)

            cv2.putText(img, name, (xmin, ymin - 5),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.8, color, 2,
                        lineType=cv2.LINE_AA)
        return img

    img = skimage.data.chelsea()
    img = cv2.resize(img, (640, 640))
    rgb_img = img.copy()
    img = np.float32(img) / 255
    transform = transforms.ToTensor()
    tensor = transform(img).unsqueeze(0)

    model = hub_yolov5()
    model.eval()
    model.cpu()
    target_layers = [model.model.model.model[-2]]

    results = model([rgb_img])
    boxes, colors, names = parse_detections(results)
    detections = draw_detections(boxes, colors, names, rgb_img.copy())
    assert detections.shape == (640, 640, 3) and detections.dtype == np.uint8
    assert len(boxes) == 5 and set(names) == {"dog"}
    assert all(0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 640 for x1, y1, x2, y2 in boxes)
    assert not np.array_equal(detections, rgb_img)  # the boxes were drawn

    # ------------------------------------------------------------------ cell 3
    cam = EigenCAM(model, target_layers, use_cuda=False)
    grayscale_cam = cam(tensor)[0, :, :]
    cam_image = show_cam_on_image(img, grayscale_cam, use_rgb=True)

    assert grayscale_cam.shape == (640, 640) and grayscale_cam.dtype == np.float32
    assert grayscale_cam.min() == pytest.approx(0, abs=1e-6)
    assert grayscale_cam.max() == pytest.approx(1, abs=1e-5)
    assert cam_image.shape == (640, 640, 3) and cam_image.dtype == np.uint8
    saved = []
    handle = target_layers[0].register_forward_hook(lambda m, args, out: saved.append(out))
    try:
        with torch.no_grad():
            model(tensor)
    finally:
        handle.remove()
    expected = eigencam_by_hand(saved[0], (640, 640))
    assert expected.std() > 0.05  # a map with structure, not a constant
    np.testing.assert_allclose(grayscale_cam, expected, atol=1e-4)
    # the hub model's parameters, modes and hooks are as they were
    assert not any(m._forward_hooks for m in model.modules())
    assert not model.training and all(p.requires_grad and p.grad is None
                                      for p in model.parameters())
    # the call without use_cuda (the notebook's latest version) gives the same map
    np.testing.assert_array_equal(EigenCAM(model, target_layers)(tensor)[0, :, :], grayscale_cam)

    # ------------------------------------------------------------------ cell 5
    def renormalize_cam_in_bounding_boxes(boxes, colors, names, image_float_np, grayscale_cam):
        """Normalize the CAM to be in the range [0, 1]
        inside every bounding boxes, and zero outside of the bounding boxes. """
        renormalized_cam = np.zeros(grayscale_cam.shape, dtype=np.float32)
        for x1, y1, x2, y2 in boxes:
            renormalized_cam[y1:y2, x1:x2] = scale_cam_image(grayscale_cam[y1:y2, x1:x2].copy())
        renormalized_cam = scale_cam_image(renormalized_cam)
        eigencam_image_renormalized = show_cam_on_image(image_float_np, renormalized_cam,
                                                        use_rgb=True)
        image_with_bounding_boxes = draw_detections(boxes, colors, names,
                                                    eigencam_image_renormalized)
        return image_with_bounding_boxes

    renormalized_cam_image = renormalize_cam_in_bounding_boxes(boxes, colors, names, img,
                                                               grayscale_cam)
    assert renormalized_cam_image.shape == (640, 640, 3)
    assert renormalized_cam_image.dtype == np.uint8

    # ------------------------------------------------------------------ cell 6
    both = np.hstack((rgb_img, cam_image, renormalized_cam_image))
    assert both.shape == (640, 3 * 640, 3) and both.dtype == np.uint8


def test_scale_cam_image_takes_one_box_of_a_map_as_the_tutorial_passes_it():
    """renormalize_cam_in_bounding_boxes passes scale_cam_image one 2-D
    crop (h x w, not a batch) and stores the result in an h x w slice: 1.5.7
    returns it min-max normalised, h x w float32 (it iterates over the rows,
    normalising each one). The crop's shape and values, by hand."""
    crop = np.array([[0.2, 0.4, 0.6], [0.3, 0.9, 0.5]], np.float32)
    scaled = scale_cam_image(crop.copy())
    assert scaled.shape == (2, 3) and scaled.dtype == np.float32
    rows = [(r - r.min()) / (1e-7 + (r - r.min()).max()) for r in crop]
    np.testing.assert_allclose(scaled, np.float32(rows), atol=1e-6)
