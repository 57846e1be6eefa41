"""The recipes of docs/recipes.md and docs/detection.md, checked beyond running: the layers chosen, maps
that change with the target (another prompt, another class)."""
import numpy as np
import pytest
import torch

from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.layers import resolve_layer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SimilarityToConceptTarget

pytestmark = pytest.mark.slow


def test_timm_vit_recipe():
    timm = pytest.importorskip("timm", reason="the timm extra is not installed")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False).eval()
    cam = GradCAM(model=model)
    assert cam.target_layers == [model.blocks[-1].norm1]
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    a = cam(x, [ClassifierOutputTarget(1)])
    b = cam(x, [ClassifierOutputTarget(2)])
    assert a.shape == (1, 224, 224) and a.max() == pytest.approx(1, abs=1e-5)
    assert np.abs(a - b).max() > 0.05


def test_clip_prompt_recipe_maps_change_with_the_prompt():
    open_clip = pytest.importorskip("open_clip", reason="the clip extra is not installed")
    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        prompts = clip.encode_text(tokenizer(["a photo of a cat", "a photo of a dog"]),
                                   normalize=True)

    class ImageEmbedding(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, x):
            return self.clip.encode_image(x, normalize=True)

    cam = GradCAM(model=ImageEmbedding(clip))
    assert cam.target_layers == [clip.visual.transformer.resblocks[-1].ln_1]
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    cat = cam(image, targets=[SimilarityToConceptTarget(prompts[0])])
    dog = cam(image, targets=[SimilarityToConceptTarget(prompts[1])])
    assert cat.shape == (1, 224, 224) and cat.max() == pytest.approx(1, abs=1e-5)
    assert np.abs(cat - dog).max() > 0.05  # another prompt, another map


def test_hugging_face_clip_vision_tower_is_found():
    transformers = pytest.importorskip("transformers", reason="the hf extra is not installed")
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                         "intermediate_size": 64},
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                           "intermediate_size": 64, "image_size": 64, "patch_size": 16})
    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    input_ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407]])

    class ImageEmbedding(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, x):
            features = self.clip.get_image_features(pixel_values=x)
            # transformers 5 returns a ModelOutput, 4.x the tensor
            return getattr(features, "pooler_output", features)

    with torch.no_grad():
        text = model.get_text_features(input_ids=input_ids)
    text = text.pooler_output if hasattr(text, "pooler_output") else text
    cam = GradCAM(model=ImageEmbedding(model))
    expected = resolve_layer(model, "vision_model.encoder.layers[-1].layer_norm1")
    assert cam.target_layers == [expected]
    maps = cam(torch.randn(1, 3, 64, 64), targets=[SimilarityToConceptTarget(text[0])])
    assert maps.shape == (1, 64, 64) and np.isfinite(maps).all()


def test_several_inputs_wrapper_recipe():
    class ImageAndMetadata(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1),
                                                torch.nn.ReLU())
            self.head = torch.nn.Linear(8 + 4, 3)

        def forward(self, image, metadata):
            pooled = self.features(image).mean(dim=(2, 3))
            return self.head(torch.cat([pooled, metadata], dim=1))

    class WithMetadata(torch.nn.Module):
        def __init__(self, model, metadata):
            super().__init__()
            self.model, self.metadata = model, metadata

        def forward(self, image):
            return self.model(image, self.metadata)

    torch.manual_seed(0)
    model = ImageAndMetadata().eval()
    metadata = torch.randn(2, 4)
    x = torch.randn(2, 3, 32, 32)
    wrapped = WithMetadata(model, metadata)
    maps = GradCAM(model=wrapped, target_layers=[model.features])(x, [ClassifierOutputTarget(1)] * 2)
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()
    # the wrapper holds the metadata of two images: probing with one image
    # fails, and says so, rather than guess
    with pytest.raises(ValueError, match="fails on one 224 x 224 image.*target_layers"):
        GradCAM(model=wrapped)
    # metadata that broadcasts over the batch lets the library find the layer
    one_row = WithMetadata(model, metadata[:1])
    assert GradCAM(model=one_row).target_layers == [model.features[1]]
