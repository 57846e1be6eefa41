"""Every command line of the library that README.md and the documentation
pages show in a ```bash block parses with the real parser of its command:
an option renamed or removed fails here, not in a reader's terminal.

Commands are parsed, not run (what they do is tested in tests/cli/,
tests/datasets/ and tests/demo/); ``\\`` continuations are joined and
``# comments`` dropped. Each command name below maps to its parser; a
line that starts one of them but is not recognised fails the test."""
import argparse
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from pytorch_grad_cam.cli import parser as image_cli
from pytorch_grad_cam.datasets import options as dataset_options
from pytorch_grad_cam.demo import cli as demo_cli

ROOT = Path(__file__).resolve().parents[2]
BASH = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)

PARSERS: dict[tuple[str, ...], Callable[[], argparse.ArgumentParser]] = {
    ("grad-cam", "vit"): image_cli.build_vit_parser,
    ("python", "vit_example.py"): image_cli.build_vit_parser,
    ("grad-cam", "explain-dataset"): dataset_options.build_parser,
    ("python", "-m", "pytorch_grad_cam.datasets.cli"): dataset_options.build_parser,
    ("python", "-m", "pytorch_grad_cam.datasets"): dataset_options.build_parser,
    ("grad-cam", "demo"): demo_cli.build_parser,
    ("python", "-m", "pytorch_grad_cam.demo"): demo_cli.build_parser,
    ("grad-cam",): image_cli.image_parser,
    ("python", "cam.py"): image_cli.image_parser,
    ("python", "-m", "pytorch_grad_cam"): image_cli.image_parser,
}
TORCHRUN_MODULE = "pytorch_grad_cam.datasets.cli"


def _pages() -> list[Path]:
    docs = ROOT / "docs"
    return [ROOT / "README.md"] + sorted(
        p for p in docs.rglob("*.md") if not {"_build", "auto_tutorials"} & set(p.relative_to(docs).parts))


def _commands() -> list:
    found = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for block in BASH.finditer(text):
            first = text.count("\n", 0, block.start()) + 2
            joined = block.group(1).replace("\\\n", " ")
            for offset, line in enumerate(joined.split("\n")):
                for part in re.split(r"&&|;", line.split(" #")[0]):
                    words = shlex.split(part, comments=True)
                    if words and _is_ours(words):
                        name = f"{page.relative_to(ROOT).as_posix()}:{first + offset}"
                        found.append(pytest.param(words, id=f"{name} {' '.join(words[:3])}"))
    return found


def _is_ours(words: list[str]) -> bool:
    text = " ".join(words)
    return words[0] in ("grad-cam", "torchrun") or text.startswith(
        ("python cam.py", "python vit_example.py", "python -m pytorch_grad_cam"))


def _parser_and_arguments(words: list[str]) -> tuple[Callable[[], argparse.ArgumentParser], list[str]]:
    if words[0] == "torchrun":  # torchrun's options, then -m MODULE or a script
        if "-m" not in words:
            return argparse.ArgumentParser, []  # a user's own script: torchrun's part only
        at = words.index("-m")
        assert words[at + 1] == TORCHRUN_MODULE, words
        return dataset_options.build_parser, words[at + 2:]
    for prefix, build in PARSERS.items():  # the longest prefixes come first
        if tuple(words[:len(prefix)]) == prefix:
            return build, words[len(prefix):]
    raise AssertionError(f"no parser known for {' '.join(words)!r}")


def test_the_pages_show_commands():
    shown = {" ".join(param.values[0][:2]) for param in _commands()}
    assert {"python cam.py", "grad-cam explain-dataset", "grad-cam demo", "python vit_example.py"} <= shown


@pytest.mark.parametrize("words", _commands())
def test_command_parses(words):
    build, arguments = _parser_and_arguments(words)
    try:
        build().parse_args(arguments)
    except SystemExit as exit_:  # argparse's error exit
        pytest.fail(f"{' '.join(words)!r} does not parse (exit {exit_.code})")
