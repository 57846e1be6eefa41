"""``--method recommended`` on the command line: the method the quality
benchmark chose for the model's family (pytorch_grad_cam/app/recommended_table.py),
named with the reason in the run's header; with other methods, once."""
import argparse

from cli_helpers import EXAMPLES
from test_attention_option import _tiny_cnn, _tiny_vit

from pytorch_grad_cam.app import recommended_table
from pytorch_grad_cam.cli import image_parser, job


def _prepare(tmp_path, load, *methods):
    args: argparse.Namespace = image_parser().parse_args(
        ["--image-path", str(EXAMPLES / "chelsea.jpg"), "--method", *methods, "--output-dir",
         str(tmp_path), "--no-progress"])
    return job.prepare(args, load=lambda args: load())


def test_recommended_picks_per_family_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(recommended_table, "RECOMMENDED", {
        "cnn": {"method": "layercam", "reason": "best pointing game / relevance mass on the "
                                                "quality benchmark, docs/quality.md"},
        "vit": {"method": "gradattention", "reason": "best for ViTs"}})
    cnn = _prepare(tmp_path, _tiny_cnn, "recommended")
    assert cnn.methods == ["layercam"]
    line = ("recommended for CNN: layercam (best pointing game / relevance mass on the quality "
            "benchmark, docs/quality.md)")
    assert cnn.recommended == line
    assert job.header(cnn).splitlines()[1] == line
    vit = _prepare(tmp_path, _tiny_vit, "gradcam", "recommended", "gradattention")
    assert vit.methods == ["gradcam", "gradattention"]
    assert vit.recommended == "recommended for ViT: gradattention (best for ViTs)"


def test_without_the_word_no_line(tmp_path):
    prepared = _prepare(tmp_path, _tiny_cnn, "gradcam")
    assert prepared.recommended is None
    assert not any(line.startswith("recommended") for line in job.header(prepared).splitlines())
