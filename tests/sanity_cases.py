"""What the tests of the sanity checks share (tests/metrics, tests/cli,
tests/datasets): a CNN trained on the synthetic shapes, trained once per
test session whichever test asks first, and an edge detector that is not
a method (its map ignores the model and the class), registered for a
test.

The CNN is ``synthetic_shapes.train_cnn``'s (test_quality's recipe) with
100 steps instead of 250 (about 6 s on two idle cores); its held-out
accuracy is asserted.
"""
import contextlib
import functools

import torch
import torch.nn.functional as F

from pytorch_grad_cam import registry
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.synthetic_shapes import make_shapes, model_input, train_cnn

#: held-out images: the accuracy check, and the first ones for the checks
HELD_OUT, HELD_OUT_SEED = 64, 20_251
TRAIN_STEPS = 100


class EdgeCAM(BaseCAM):
    """Not a method: the Sobel edge map of the input's grey levels
    (scaled to [0, 1]), whatever the model and the target."""

    uses_gradients = False

    def forward(self, input_tensor, targets, eigen_smooth=False):
        grey = input_tensor.float().mean(dim=1, keepdim=True)
        kernel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]],
                              device=grey.device)[None, None]
        edges = (F.conv2d(grey, kernel, padding=1).abs()
                 + F.conv2d(grey, kernel.transpose(2, 3), padding=1).abs())[:, 0]
        return edges / edges.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]


@contextlib.contextmanager
def edge_method_registered(monkeypatch, name="edgecam"):
    """EdgeCAM registered as ``name`` (class-agnostic) for the test only."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_method(name, class_specific=False)(EdgeCAM)
    yield name


@functools.cache
def trained_shapes_cnn():
    """(the trained SmallCNN in eval mode, the held-out Shapes, their held-out
    accuracy); the caller must not change the model."""
    with torch.random.fork_rng():
        model, _ = train_cnn(seed=1, steps=TRAIN_STEPS)
    data = make_shapes(HELD_OUT, seed=HELD_OUT_SEED)
    with torch.no_grad():
        accuracy = float((model(model_input(data.images)).argmax(dim=1) == data.labels)
                         .float().mean())
    assert accuracy >= 0.9, f"the CNN reaches only {accuracy:.3f}: its maps mean nothing"
    return model.eval(), data, accuracy
