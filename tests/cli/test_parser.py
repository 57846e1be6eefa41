"""pytorch_grad_cam.cli.parser: the options, their help and the command-line
page's copy of it (docs/cli.md).

Run as a script (``python tests/cli/test_parser.py``) it rewrites
docs/cli.md's copy of ``cam.py --help`` (for example after a method was
added to the library).
"""
import argparse
import re

import pytest
import torch
from cli_helpers import ROOT

from pytorch_grad_cam.cli import UsageError, image_parser
from pytorch_grad_cam.cli import parser as cli_parser
from pytorch_grad_cam.registry import METHODS, registered_methods
from pytorch_grad_cam.scoring import default_batch_size

HELP_BLOCK = re.compile(r"<!-- cam\.py --help -->\n```text\n(.*?)```", re.S)


def current_help() -> str:
    return image_parser("cam.py").format_help().replace("optional arguments:", "options:")


def _flat(text: str) -> str:
    return " ".join(text.split())


CLI_PAGE = ROOT / "docs" / "cli.md"


def test_cli_page_shows_the_real_help():
    page = CLI_PAGE.read_text(encoding="utf-8")
    match = HELP_BLOCK.search(page)
    assert match, "docs/cli.md lost its '<!-- cam.py --help -->' block"
    assert match.group(1) == current_help(), (
        "docs/cli.md's copy of `python cam.py --help` is out of date: "
        "run python tests/cli/test_parser.py")


def test_readme_quick_start_image_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paths = re.findall(r"--image-path (examples/[^\s`]+)", readme)
    assert "examples/chelsea.jpg" in paths
    for path in paths:
        assert (ROOT / path).is_file(), path


def test_batch_size_help_states_the_library_defaults():
    text = _flat(image_parser("cam.py").format_help())
    cpu, cuda = default_batch_size(torch.device("cpu")), default_batch_size(torch.device("cuda"))
    assert (cpu, cuda) == (8, 64)
    assert f"default: {cpu} on CPU, {cuda} on CUDA" in text
    assert "default: 8 on CPU, 64 on CUDA" in text and "16 on CPU" not in text
    chunked = [info.name for info in registered_methods(extra_passes=True)]
    assert {"scorecam", "ablationcam"} <= set(chunked)
    assert {info.name for info in registered_methods(perturbation=True)} <= set(chunked)
    assert f"the methods that make extra passes ({', '.join(chunked)})" in text


def test_method_help_lists_every_registered_method_and_all_and_everything():
    text = _flat(image_parser().format_help())
    assert f"one or more CAM methods, case-insensitive: {', '.join(METHODS)};" in text
    sampling = [info.name for info in registered_methods(sampling=True)]
    assert sampling == ["sscam", "iscam"]
    assert ("'everything' runs every method, 'all' the methods affordable on the device: on "
            "CUDA every method, elsewhere every method but the sampling methods "
            f"({', '.join(sampling)}: ") in text
    assert "(default: gradcam)" in text
    assert ("'recommended' is the method the quality benchmark measured best for the model's "
            "family (CNN or Vision Transformer; docs/quality.md), named with the reason before "
            "the run.") in text


def test_help_documents_the_file_names_and_the_model_specs():
    text = _flat(image_parser("cam.py").format_help())
    assert "chelsea_tabby_gradcam_cam.jpg" in text and "chelsea_resnet18_gradcam_cam.jpg" in text
    assert "timm:NAME" in text and "hf:DIR_OR_ID" in text
    for option in ("--num-classes N", "--class-names FILE", "--random-weights"):
        assert option in text


@pytest.mark.parametrize("text, value", [("1", 1), ("64", 64)])
def test_positive_int_accepts(text, value):
    assert cli_parser.positive_int(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "x", "1.5", ""])
def test_positive_int_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"must be a positive integer, got "
                                                         f"{re.escape(repr(text))}"):
        cli_parser.positive_int(text)


def test_parser_errors_are_usage_errors():
    with pytest.raises(UsageError, match="argument --batch-size: must be a positive integer"):
        image_parser().parse_args(["--batch-size", "0"])
    with pytest.raises(UsageError, match="unrecognized arguments: --bogus"):
        image_parser().parse_args(["--bogus"])


def test_old_spellings_of_the_smoothing_options():
    args = image_parser().parse_args(["--aug_smooth", "--eigen_smooth"])
    assert args.aug_smooth and args.eigen_smooth
    assert "--aug_smooth" not in image_parser().format_help()


def test_help_lists_the_commands():
    text = _flat(image_parser("grad-cam").format_help())
    assert "Commands: 'grad-cam vit ...' explains a Vision Transformer, see " \
           "'grad-cam vit --help';" in text
    for name in ("explain-dataset", "demo"):
        assert f"'grad-cam {name} ...'" in text and f"see 'grad-cam {name} --help'" in text
    assert "Commands" not in _flat(cli_parser.build_parser("grad-cam").format_help())


if __name__ == "__main__":
    text = CLI_PAGE.read_text(encoding="utf-8")
    updated = HELP_BLOCK.sub(lambda m: f"<!-- cam.py --help -->\n```text\n{current_help()}```",
                              text)
    CLI_PAGE.write_text(updated, encoding="utf-8")
    print("docs/cli.md: cam.py --help block " + ("updated" if updated != text else "unchanged"))
