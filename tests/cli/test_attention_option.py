"""The attention methods (LeGrad, attention rollout, gradient-weighted
attention, Grad-ECLIP) on the command line: they run on Vision Transformers
with their default blocks (every block; Grad-ECLIP the last), and are
refused (named) or left out (--method all) for other models."""
import argparse
import contextlib

import pytest
import torch
from cli_helpers import EXAMPLES
from torchvision.models.vision_transformer import VisionTransformer

from pytorch_grad_cam import METHODS
from pytorch_grad_cam.cli import UsageError, image_parser, job, models
from pytorch_grad_cam.registry import registered_methods

ATTENTION = [info.name for info in registered_methods(attention=True)]
#: those that take the last block by default (``default_blocks``), not every block
LAST_BLOCK = [info.name for info in registered_methods(attention=True)
              if getattr(info.cls, "default_blocks", "all") == "last"]


def _args(*argv: str) -> argparse.Namespace:
    return image_parser().parse_args(list(argv))


def _tiny_vit() -> models.LoadedModel:
    torch.manual_seed(0)
    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                            hidden_dim=16, mlp_dim=32, num_classes=5).eval()
    torch.nn.init.normal_(vit.heads.head.weight)  # torchvision starts it at zero
    return models.LoadedModel(vit, "tiny_vit", 32)


def _tiny_cnn() -> models.LoadedModel:
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 5)).eval()
    return models.LoadedModel(cnn, "tiny_cnn", 32)


def test_the_registry_has_the_attention_methods():
    assert ATTENTION == ["legrad", "attentionrollout", "gradattention", "gradeclip", "attnlrp"]


def _prepare(tmp_path, load, *methods):
    return job.prepare(_args("--image-path", str(EXAMPLES / "chelsea.jpg"), "--method",
                             *methods, "--output-dir", str(tmp_path), "--no-progress"),
                       load=lambda args: load())


@pytest.mark.parametrize("name", ATTENTION)
def test_an_attention_method_named_for_a_cnn_is_refused_with_the_reason(tmp_path, name):
    with pytest.raises(UsageError, match=rf"--method {name} reads the attention of a Vision "
                                         r"Transformer, and --model tiny_cnn \(Sequential\) is "
                                         r"not one .*supported: torchvision VisionTransformer"):
        _prepare(tmp_path, _tiny_cnn, "gradcam", name)


def test_all_leaves_out_the_attention_methods_for_a_cnn(tmp_path):
    prepared = _prepare(tmp_path, _tiny_cnn, "all")
    assert prepared.not_applicable == ATTENTION
    assert "gradcam" in prepared.methods and not set(ATTENTION) & set(prepared.methods)


def test_on_a_vit_they_use_every_block_and_write_their_maps(tmp_path):
    prepared = _prepare(tmp_path, _tiny_vit, *ATTENTION, "gradcam")
    assert prepared.methods == [*ATTENTION, "gradcam"] and prepared.not_applicable == []
    vit = prepared.model
    assert prepared.target_layers == [vit.encoder.layers[-1].ln_1]
    with contextlib.ExitStack() as stack:
        job.make_cams(prepared, stack)
        for name in ATTENTION:
            cam = prepared.cams[name]
            assert type(cam) is METHODS[name]
            blocks = list(vit.encoder.layers)  # every block (or the last), not ln_1
            assert cam.target_layers == (blocks[-1:] if name in LAST_BLOCK else blocks)
        assert prepared.cams["gradcam"].target_layers == [vit.encoder.layers[-1].ln_1]
        header = job.header(prepared)
        assert ("legrad, attentionrollout, gradattention: the attention of every transformer "
                "block (not the target layer)") in header.splitlines()
        assert ("attnlrp: the relevance of the input pixels, propagated through every "
                "transformer block (not the target layer)") in header.splitlines()
        assert LAST_BLOCK == ["gradeclip"]
        assert ("gradeclip: the attention of the last transformer block (not the target "
                "layer)") in header.splitlines()
        result = job.explain_image(prepared, EXAMPLES / "chelsea.jpg")
    for name in ATTENTION:
        cam_map = result.maps[name]
        assert cam_map.shape == (32, 32) and cam_map.max() == pytest.approx(1.0)
