#!/usr/bin/env python
"""AttnLRP: agreement with the authors' package lxt 2.1 on the same model,
weights and input.

    python3 -m venv /work/venv-lxt
    /work/venv-lxt/bin/pip install torch torchvision timm transformers 'lxt==2.1.*'
    python bench/attnlrp_parity.py --lxt-python /work/venv-lxt/bin/python [--json PATH]

lxt lives only in its own environment; this script (run with the
library's Python) builds each model with random weights (seed 0), saves
its weights and the input (``skimage.data.chelsea()`` and ``coffee()``,
224 x 224, ImageNet normalisation) to a temporary folder, and runs itself
in the lxt environment (``--worker``) to compute lxt's relevance of the
same input pixels for the same target. Both sides: relevance of the input
= input x (modified) gradient of the target score, summed over the colour
channels, B x 224 x 224, signed.

Cases: ``timm`` (``vit_tiny_patch16_224``, fused attention), ``torchvision``
(``VisionTransformer``, 6 blocks of width 192), ``hf-vit``
(``ViTForImageClassification``, eager attention, 6 blocks of width 192),
``hf-clip`` (``CLIPVisionModelWithProjection``, eager, QuickGELU, 6 blocks
of width 192; the target is dimension 3 of the image embedding). The
classifiers' target is class 3.

lxt 2.1 ships AttnLRP patch maps for language models only (and, for
torchvision's ViT, CP-LRP inside the attention: the gradient stopped at
Q and K, a different rule). The worker therefore applies lxt's own
AttnLRP pieces to each Vision Transformer, as lxt's language-model maps
do: ``layer_norm_forward`` on ``nn.LayerNorm`` (and on timm's
``timm.layers.norm.LayerNorm``, a subclass with a forward of its own that a
patch of ``nn.LayerNorm`` does not reach: without it, r = 0.990 for timm), ``non_linear_forward``
(identity rule) on the activation modules (``nn.GELU``, transformers'
``GELUActivation`` and ``QuickGELUActivation``), ``wrap_attention_forward`` on the Hugging
Face modelling module's ``eager_attention_forward`` (Q and K gradients / 4,
V / 2: what lxt's ``patch_attention`` does, without its replacement of
``ALL_ATTENTION_FUNCTIONS`` by a plain dict, which transformers 5 cannot
use: it calls that registry's ``get_interface``), and for
timm and torchvision, whose attention lxt does not patch, the same
wrapper (lxt's ``divide_gradient``: Q / 4, K / 4, V / 2) around
``torch.nn.functional.scaled_dot_product_attention`` in the worker
process. lxt 2.1's ``lxt.efficient`` package does not import with
transformers 5 (its BERT module imports ``find_pruneable_heads_and_indices``,
which transformers removed); the worker then loads ``lxt.efficient``'s
``rules`` and ``patches`` modules without the package's ``__init__``.

Printed per case: the Pearson r of the signed relevance (all pixels of all
images), the r of the maps (our ``cam(...)`` output against lxt's
relevance put through the same ReLU and min-max normalisation), and the
largest absolute difference relative to the largest absolute relevance.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types
from typing import Any

import numpy as np
import torch

CASES = ("timm", "torchvision", "hf-vit", "hf-clip")
TARGET = 3
WIDTH = {"hidden_size": 192, "num_hidden_layers": 6, "num_attention_heads": 3,
         "intermediate_size": 768, "image_size": 224, "patch_size": 16}


def build(case: str) -> torch.nn.Module:
    """The case's model, random weights (seed 0), eval mode; the same code
    runs in both environments."""
    torch.manual_seed(0)
    if case == "timm":
        import timm

        return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    if case == "torchvision":
        import torchvision

        model = torchvision.models.VisionTransformer(
            image_size=224, patch_size=16, num_layers=6, num_heads=3, hidden_dim=192,
            mlp_dim=768, num_classes=10)
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts it at 0
        return model.eval()
    import transformers

    if case == "hf-vit":
        config = transformers.ViTConfig(num_labels=10, attn_implementation="eager", **WIDTH)
        return transformers.ViTForImageClassification(config).eval()
    config = transformers.CLIPVisionConfig(projection_dim=32, attn_implementation="eager",
                                           **WIDTH)
    return transformers.CLIPVisionModelWithProjection(config).eval()


def scores(case: str, output: Any) -> torch.Tensor:
    if case == "hf-clip":
        return output.image_embeds
    return output.logits if hasattr(output, "logits") else output


# ------------------------------------------------------------- lxt side
def _lxt_efficient() -> tuple[types.ModuleType, types.ModuleType]:
    try:
        import lxt.efficient.patches as patches
        import lxt.efficient.rules as rules
    except ImportError:  # lxt 2.1 with transformers 5: see the module docstring
        import lxt

        package = types.ModuleType("lxt.efficient")
        package.__path__ = [os.path.join(os.path.dirname(lxt.__file__), "efficient")]
        sys.modules["lxt.efficient"] = package
        import lxt.efficient.patches as patches
        import lxt.efficient.rules as rules
    return patches, rules


def lxt_relevance(case: str, folder: str) -> None:
    """In the lxt environment: lxt's relevance of the saved input."""
    from functools import partial

    patches, rules = _lxt_efficient()
    model = build(case)
    model.load_state_dict(torch.load(os.path.join(folder, "weights.pt")))
    x = torch.load(os.path.join(folder, "input.pt"))
    patch_map: dict[Any, Any] = {
        torch.nn.LayerNorm: partial(patches.patch_method, patches.layer_norm_forward),
        torch.nn.GELU: partial(patches.patch_method, patches.non_linear_forward,
                               keep_original=True),
    }
    if case.startswith("hf"):
        import transformers.activations as activations

        module = (__import__("transformers.models.vit.modeling_vit", fromlist=["x"])
                  if case == "hf-vit" else
                  __import__("transformers.models.clip.modeling_clip", fromlist=["x"]))
        # lxt's patch_attention, less its replacement of ALL_ATTENTION_FUNCTIONS
        # by a dict (transformers 5 calls its get_interface): for the eager
        # implementation the wrapped eager_attention_forward is what runs
        module.eager_attention_forward = patches.wrap_attention_forward(
            module.eager_attention_forward)
        for name in ("GELUActivation", "QuickGELUActivation"):
            patch_map[getattr(activations, name)] = partial(
                patches.patch_method, patches.non_linear_forward, keep_original=True)
    else:
        if case == "timm":  # timm's LayerNorm subclass has a forward of its own
            import timm.layers.norm

            patch_map[timm.layers.norm.LayerNorm] = partial(patches.patch_method,
                                                            patches.layer_norm_forward)
        functional = torch.nn.functional
        sdpa = functional.scaled_dot_product_attention

        def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      *args: Any, **kwargs: Any) -> torch.Tensor:
            return sdpa(rules.divide_gradient(query, 4), rules.divide_gradient(key, 4),
                        rules.divide_gradient(value, 2), *args, **kwargs)

        functional.scaled_dot_product_attention = attention
    for target, patch in patch_map.items():
        if not patch(target):
            raise RuntimeError(f"lxt could not patch {target}")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x.requires_grad_(True)
    output = scores(case, model(x))
    output[:, TARGET].sum().backward()
    relevance = (x * x.grad).sum(dim=1).detach()
    torch.save(relevance, os.path.join(folder, "lxt.pt"))


# ------------------------------------------------------------- our side
def photos() -> torch.Tensor:
    from skimage import data

    from pytorch_grad_cam.utils.image import preprocess_image

    images = []
    for image in (data.chelsea(), data.coffee()):
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        tensor = torch.nn.functional.interpolate(tensor, size=(224, 224), mode="bilinear",
                                                 antialias=True)[0].permute(1, 2, 0)
        images.append(preprocess_image(tensor.numpy() / 255.0))
    return torch.cat(images)


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a64, b64 = a.double().ravel(), b.double().ravel()
    return float(torch.corrcoef(torch.stack([a64, b64]))[0, 1])


def compare(case: str, lxt_python: str) -> dict[str, Any]:
    from pytorch_grad_cam import AttnLRP
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = build(case)
    x = photos()
    with tempfile.TemporaryDirectory() as folder:
        torch.save(model.state_dict(), os.path.join(folder, "weights.pt"))
        torch.save(x, os.path.join(folder, "input.pt"))
        subprocess.run([lxt_python, os.path.abspath(__file__), "--worker", case, folder],
                       check=True)
        theirs = torch.load(os.path.join(folder, "lxt.pt"))
    selector = (lambda output: output.image_embeds) if case == "hf-clip" else None
    cam = AttnLRP(model, output_selector=selector)
    maps = torch.from_numpy(cam(x, [ClassifierOutputTarget(TARGET)] * x.shape[0]))
    ours = cam.relevance.cpu()
    their_maps = scale_cam_image(torch.relu(theirs.float()))
    return {"case": case, "model": type(model).__name__,
            "r_relevance": round(pearson(ours, theirs), 6),
            "r_maps": round(pearson(maps, their_maps), 6),
            "max_abs_difference": round(float((ours - theirs).abs().max()
                                              / theirs.abs().max()), 6),
            "relevance_sum_ours": [round(float(v), 5) for v in ours.sum(dim=(1, 2))],
            "relevance_sum_lxt": [round(float(v), 5) for v in theirs.sum(dim=(1, 2))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lxt-python", default="/work/venv-lxt/bin/python",
                        help="the Python of the environment with lxt 2.1")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        lxt_relevance(*args.worker)
        return
    results = []
    print("| case | model | r (signed relevance) | r (maps) | max abs difference / max |")
    print("| --- | --- | --- | --- | --- |")
    for case in args.cases:
        row = compare(case, args.lxt_python)
        results.append(row)
        print(f"| {row['case']} | {row['model']} | {row['r_relevance']:.4f} | "
              f"{row['r_maps']:.4f} | {row['max_abs_difference']:.2e} |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
