"""Deep Feature Factorization with a reshape transform that runs a module,
as grad-cam 1.5.7's Hugging Face tutorial does for ConvNeXt (its reshape
applies ``model.convnext.layernorm`` to the recorded features)."""
import numpy as np
import pytest
import torch
from torch import nn

from pytorch_grad_cam import DeepFeatureFactorization, run_dff_on_image


class TinyConvNeXt(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.layernorm = nn.LayerNorm(8)
        self.classifier = nn.Linear(8, 4)

    def forward(self, x):
        pooled = self.features(x).mean(dim=(2, 3))
        return self.classifier(self.layernorm(pooled))


@pytest.mark.parametrize("norm_of_the_model", [True, False])
def test_the_reshape_may_run_a_module_with_trainable_parameters(norm_of_the_model):
    model = TinyConvNeXt().eval()
    norm = model.layernorm if norm_of_the_model else nn.LayerNorm(8)

    def reshape(features):
        return norm(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    dff = DeepFeatureFactorization(model, model.features, reshape_transform=reshape,
                                   computation_on_concepts=model.classifier)
    concepts, explanations, outputs = dff(torch.rand(2, 3, 16, 16), n_components=3)
    assert concepts.shape == (8, 3) and explanations.shape == (2, 3, 16, 16)
    assert outputs.shape == (3, 4) and np.isfinite(outputs).all()
    assert all(p.requires_grad for p in model.parameters()) and norm.weight.requires_grad


def test_run_dff_on_image_with_such_a_reshape():
    model = TinyConvNeXt().eval()

    def reshape(features):
        return model.layernorm(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    visualization = run_dff_on_image(model, model.features, model.classifier, image,
                                     torch.from_numpy(image).permute(2, 0, 1),
                                     reshape_transform=reshape, n_components=2, top_k=1)
    assert visualization.shape == (16, 48, 3) and visualization.dtype == np.uint8
