"""AblationCAM does not run its target layer on the ablated copies: the
layer's output recorded for the image stands in (``bypass_layer``), as
grad-cam 1.5.7 replaces the layer by one that returns it. A detection
backbone (the target layer of 1.5.7's Faster R-CNN recipe) thus runs once
per call, not once per chunk of copies.
"""
import threading

import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import AblationCAM
from pytorch_grad_cam.activations_and_gradients import bypass_layer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


class CountingConv(nn.Conv2d):
    """Keeps the batch size of every call of its forward."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return super().forward(x)


class Net(nn.Module):
    """conv -> target -> mean -> linear; with ``needs_input_batch`` the head
    also takes the input's channel means, so the copies cannot enter after
    the target layer alone (AblationCAM's "layer" mode, as for a detector)."""

    def __init__(self, needs_input_batch):
        super().__init__()
        torch.manual_seed(0)
        self.needs_input_batch = needs_input_batch
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.target = CountingConv(4, 6, 3, padding=1)
        self.fc = nn.Linear(6 + 3 * needs_input_batch, 3)

    def forward(self, x):
        features = torch.relu(self.target(torch.relu(self.conv(x)))).mean(dim=(2, 3))
        if self.needs_input_batch:
            features = torch.cat([features, x.mean(dim=(2, 3))], dim=1)
        return self.fc(features)


@pytest.mark.parametrize("needs_input_batch, mode", [(False, "prefix"), (True, "layer")])
def test_ablation_runs_the_target_layer_only_in_the_recording_pass(needs_input_batch, mode):
    model = Net(needs_input_batch).eval()
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    targets = [ClassifierOutputTarget(k % 3) for k in range(4)]
    with AblationCAM(model, [model.target], batch_size=3, zero_channel_shortcut=False,
                     progress=False) as cam:
        maps = cam(x, targets)
        assert cam.ablation_mode == mode
    # only the passes of the 4 images: never one image nor a chunk of 1 to 3 copies
    assert set(model.target.batches) == {4}
    assert "forward" not in model.target.__dict__  # the bypass is gone
    model.target.batches.clear()
    with AblationCAM(model, [model.target], batch_size=3, prefix_once=False,
                     zero_channel_shortcut=False, progress=False) as cam:
        full = cam(x, targets)
    assert sorted(set(model.target.batches)) == [3, 4]  # full forwards run it on the copies
    assert float(np.abs(full).max()) > 0.5
    np.testing.assert_allclose(maps, full, atol=1e-5, rtol=0)


def test_bypass_layer_returns_the_output_in_its_own_thread_only():
    layer = nn.Linear(2, 2)
    x = torch.ones(1, 2)
    stand_in = torch.full((1, 2), 7.0)
    other = {}
    with bypass_layer(layer, 1, stand_in):
        assert torch.equal(layer(x), stand_in)
        thread = threading.Thread(target=lambda: other.update(y=layer(x)))
        thread.start()
        thread.join()
        with bypass_layer(layer, 1, stand_in + 1):  # nested: the first one asked claims it
            assert torch.equal(layer(x), stand_in)
    assert torch.equal(other["y"], layer(x)) and not torch.equal(other["y"], stand_in)
    assert "forward" not in layer.__dict__
    # the second of two calls per forward pass, and an instance's own forward kept
    layer.forward = lambda inputs: inputs * 2
    with bypass_layer(layer, 2, stand_in):
        assert torch.equal(layer(x), x * 2)
        assert torch.equal(layer(x), stand_in)
    assert torch.equal(layer(x), x * 2)
