"""Grad-ECLIP parity with the authors' code (github.com/Cyang-Zhao/Grad-Eclip).

    python bench/grad_eclip_parity.py --repo PATH   # a checkout or bare clone of Grad-Eclip
    python bench/grad_eclip_parity.py               # the default path below

What runs: the authors' functions, taken at run time from their notebooks
``grad_eclip_image.ipynb`` (cells 4 and 9: ``attention_layer``,
``clip_encode_dense``, ``sim_qk``, ``grad_eclip``) and
``grad_eclip_text.ipynb`` (cells 3 and 5: ``attention_layer``,
``clip_encode_text_dense``, ``sim_qk``, ``grad_eclip``) of the snapshot
(``git show HEAD:<notebook>``), written into a temporary folder and
executed there; nothing of theirs is kept in this repository. Their code
runs on the OpenAI ``clip`` package's model, which cannot be loaded
offline; it runs here on an open_clip ``ViT-B-16`` built with random
weights (``pretrained=None``, seeded), the authors' architecture, through
an adapter that gives it the OpenAI model's attribute names
(``visual.input_resolution``, ``build_attention_mask()``, ``dtype``) and
runs open_clip's batch-first blocks in the authors' sequence-first layout.
Two edits of their source, both printed: ``x = x.half()`` is dropped (a
CPU run in float32), and, for the variant "heads as the model", their
``attention_layer(q, k, v, 1)`` (one head: the last block's attention
recomputed with a single head, which is not what the model computes) is
called with the model's 12 (image) or 8 (text) heads.

Compared, per case, on the same model, image and prompt:

- image map: their ``grad_eclip(c, qs, ks, vs, atten_outs, map_size)``
  (n = 1, the last block; ``c`` the cosine similarity of their image
  embedding and open_clip's text embedding, as their notebook computes it)
  against ``pytorch_grad_cam.grad_eclip.clip_image_maps``; theirs is
  min-max normalised, scaled to the input and normalised again like ours
  (``utils.image.scale_cam_image``), and the Pearson r and largest
  difference are taken over the 224 x 224 pixels;
- word relevance: their text ``grad_eclip`` (n = 8 last blocks,
  ``eos_position`` the argmax of the ids) against
  ``clip_word_relevance(..., blocks=8)``'s ``token_scores``: Pearson r
  and largest difference over the prompt's tokens.

Not compared: Hugging Face ``CLIPModel`` (their code reads the OpenAI
module layout; the library's HF path is checked against the formula in
tests/methods/test_grad_eclip.py), trained weights (no download here),
their ``imgprocess`` resizing to other resolutions (both get the
224 x 224 input).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pytorch_grad_cam.grad_eclip import clip_image_maps, clip_word_relevance  # noqa: E402
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402

DEFAULT_REPO = Path("/work/.mirror/Cyang-Zhao+Grad-Eclip/repo")
IMAGE_CELLS = (4, 9)
TEXT_CELLS = (3, 5)
PROMPTS = ["dog", "a dog in a car waiting for traffic lights", "traffic lights"]
SENTENCES = ["dog in a car waiting for traffic lights",
             "single cowboy guiding a line of horses through the desert"]


def notebook_cells(repo: Path, name: str, cells: tuple[int, ...]) -> str:
    """The source of code cells ``cells`` of the notebook at HEAD."""
    text = subprocess.run(["git", "-C", str(repo), "show", f"HEAD:{name}"], check=True,
                          capture_output=True, text=True).stdout
    notebook = json.loads(text)
    return "\n\n".join("".join(notebook["cells"][i]["source"]) for i in cells)


class SequenceFirst(torch.nn.Module):
    """An open_clip block (batch first) called in the OpenAI layout (L x B x D),
    with the block's parts (ln_1, attn, mlp, ln_2) readable as attributes."""

    def __init__(self, block: torch.nn.Module, attn_mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.block = block
        self.attn_mask = attn_mask

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.block, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x.transpose(0, 1), attn_mask=self.attn_mask).transpose(0, 1)


def openai_layout(model: Any) -> Any:
    """The attributes of an OpenAI ``clip`` model the authors' code reads,
    over an open_clip CLIP."""
    visual = types.SimpleNamespace(
        conv1=model.visual.conv1, class_embedding=model.visual.class_embedding,
        positional_embedding=model.visual.positional_embedding, ln_pre=model.visual.ln_pre,
        ln_post=model.visual.ln_post, proj=model.visual.proj,
        input_resolution=model.visual.image_size[0],
        transformer=types.SimpleNamespace(
            width=model.visual.conv1.out_channels,
            resblocks=[SequenceFirst(b) for b in model.visual.transformer.resblocks]))
    mask = model.attn_mask
    return types.SimpleNamespace(
        visual=visual, token_embedding=model.token_embedding,
        positional_embedding=model.positional_embedding, ln_final=model.ln_final,
        text_projection=model.text_projection, dtype=torch.float32,
        build_attention_mask=lambda: mask,
        transformer=types.SimpleNamespace(
            resblocks=[SequenceFirst(b, mask) for b in model.transformer.resblocks]),
        encode_text=model.encode_text, encode_image=model.encode_image)


def load_authors(repo: Path, notebook: str, cells: tuple[int, ...], clipmodel: Any,
                 heads: int | None, folder: Path) -> dict[str, Any]:
    """Their functions, written to ``folder`` and executed with ``clipmodel``
    as their global; ``heads``: None for their code as it is."""
    source = notebook_cells(repo, notebook, cells)
    edits = [("    x = x.half()\n", "")]
    if heads is not None:
        edits += [("attention_layer(q, k, v, 1)", f"attention_layer(q, k, v, {heads})"),
                  ("attention_layer(q, k, v, 1, attn_mask=attn_mask)",
                   f"attention_layer(q, k, v, {heads}, attn_mask=attn_mask)")]
    for old, new in edits:
        source = source.replace(old, new)
    path = folder / f"{Path(notebook).stem}_{heads or 1}.py"
    path.write_text("import torch\nimport torch.nn.functional as F\n" + source)
    namespace: dict[str, Any] = {"clipmodel": clipmodel, "__name__": path.stem,
                                 "clip_inres": clipmodel.visual.input_resolution,
                                 "clip_ksize": clipmodel.visual.conv1.kernel_size}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102
    return namespace


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def authors_image_map(ns: dict[str, Any], clipmodel: Any, image: torch.Tensor,
                      text_embedding: torch.Tensor) -> np.ndarray:
    outputs, _, vs, qs, ks, _, atten_outs, map_size = ns["clip_encode_dense"](image, n=1)
    img_embedding = torch.nn.functional.normalize(outputs[:, 0], dim=-1)
    cosine = (img_embedding @ text_embedding.T)[0]
    emap = ns["grad_eclip"](cosine[0], qs, ks, vs, atten_outs, map_size).detach()
    scaled = scale_cam_image(emap[None].float(), tuple(image.shape[2:]))
    return scale_cam_image(scaled)[0].numpy()  # normalised again, as the library's maps


def authors_word_relevance(ns: dict[str, Any], clipmodel: Any, image: torch.Tensor,
                           ids: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        img_embedding = torch.nn.functional.normalize(clipmodel.encode_image(image), dim=-1)
    x, (qs, ks, vs), _, atten_outs = ns["clip_encode_text_dense"](ids, n=8)
    text_embedding = torch.nn.functional.normalize(x, dim=-1)
    cosine = img_embedding @ text_embedding.T
    eos_position = ids.argmax(dim=-1)
    ns["eos_position"] = eos_position  # their sim_qk reads it as a global
    return ns["grad_eclip"](cosine[0], qs, ks, vs, atten_outs, eos_position).detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=DEFAULT_REPO,
                        help="a clone of github.com/Cyang-Zhao/Grad-Eclip (default: %(default)s)")
    args = parser.parse_args()
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16", pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    clipmodel = openai_layout(model)
    generator = torch.Generator().manual_seed(1)
    coarse = torch.randn(1, 3, 14, 14, generator=generator)
    image = torch.nn.functional.interpolate(coarse, size=(224, 224), mode="bilinear") \
        + 0.3 * torch.randn(1, 3, 224, 224, generator=generator)
    print("model: open_clip ViT-B-16, random weights (seed 0); image: 1 x 3 x 224 x 224 noise")
    with tempfile.TemporaryDirectory() as folder:
        for heads, label in ((None, "their code as it is (one head)"),
                             ((12, 8), "heads as the model (12 image, 8 text)")):
            image_ns = load_authors(args.repo, "grad_eclip_image.ipynb", IMAGE_CELLS, clipmodel,
                                    heads[0] if heads else None, Path(folder))
            text_ns = load_authors(args.repo, "grad_eclip_text.ipynb", TEXT_CELLS, clipmodel,
                                   heads[1] if heads else None, Path(folder))
            print(f"\n== {label}")
            ours = clip_image_maps(model, image, PROMPTS, tokenizer=tokenizer)
            with torch.no_grad():
                texts = torch.nn.functional.normalize(model.encode_text(tokenizer(PROMPTS)),
                                                      dim=-1)
            for prompt, mine, text in zip(PROMPTS, ours, texts):
                theirs = authors_image_map(image_ns, clipmodel, image, text[None])
                print(f"  image map  {prompt[:40]!r:44s} r = {pearson(mine, theirs):.6f}   "
                      f"max |diff| = {np.abs(mine - theirs).max():.2e}")
            for sentence in SENTENCES:
                ids = tokenizer([sentence])
                mine_words = clip_word_relevance(model, image, ids, tokenizer=tokenizer, blocks=8)
                theirs_tokens = authors_word_relevance(text_ns, clipmodel, image, ids)
                print(f"  words      {sentence[:40]!r:44s} r = "
                      f"{pearson(mine_words.token_scores, theirs_tokens):.6f}   max |diff| = "
                      f"{np.abs(mine_words.token_scores - theirs_tokens).max():.2e}")


if __name__ == "__main__":
    main()
