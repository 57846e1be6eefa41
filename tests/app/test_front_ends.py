"""The front-ends (cli/, datasets/, demo/) import the library and app/, never
each other; the dispatcher names them by string only; the shared layer and
the library's loading modules import the package at module level only."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pytorch_grad_cam"
FRONT_ENDS = ("cli", "datasets", "demo")
#: function-level imports of the package's own modules that are documented lazy
#: loading: the web demo's Gradio page (the optional demo extra)
LAZY = {("demo/cli.py", "pytorch_grad_cam.demo.app"), ("demo/__init__.py", "pytorch_grad_cam.demo")}


def _modules(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (PACKAGE / folder).rglob("*.py"))


def _imported(tree: ast.AST, path: Path) -> list[tuple[str, ast.AST]]:
    """Every module an import statement of ``tree`` names, absolute."""
    found = []
    package = "pytorch_grad_cam." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((name, node))
            found += [(f"{name}.{alias.name}", node) for alias in node.names]
    return found


def _front_end(name: str) -> str | None:
    parts = name.split(".")
    if len(parts) >= 2 and parts[0] == "pytorch_grad_cam" and parts[1] in FRONT_ENDS:
        return parts[1]
    return None


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_a_front_end_imports_no_other_front_end(front_end):
    offending = []
    for path in _modules(front_end):
        for name, node in _imported(ast.parse(path.read_text(encoding="utf-8")), path):
            other = _front_end(name)
            if other is not None and other != front_end:
                offending.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}")
    assert offending == []


def test_the_shared_layer_and_the_library_import_no_front_end():
    offending = []
    for path in _modules("app", "models") + [PACKAGE / "commands.py", PACKAGE / "__init__.py"]:
        for name, node in _imported(ast.parse(path.read_text(encoding="utf-8")), path):
            if _front_end(name) is not None:
                offending.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}")
    assert offending == []


def test_the_dispatcher_names_every_front_end_command_by_string():
    from pytorch_grad_cam.commands import COMMANDS, IMAGE_COMMAND

    entries = {command.entry for command in [*COMMANDS.values(), IMAGE_COMMAND]}
    assert {entry.split(".")[1] for entry in entries} == set(FRONT_ENDS)
    for command in [*COMMANDS.values(), IMAGE_COMMAND]:
        for entry in filter(None, (command.entry, command.check_entry)):
            module, _, function = entry.partition(":")
            assert callable(getattr(__import__(module, fromlist=[function]), function)), entry


def _function_level_imports(path: Path) -> list[tuple[str, int]]:
    """(module, line) of every import of the package inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""] if not node.level else ["pytorch_grad_cam"]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                found += [(name, node.lineno) for name in names
                          if name.startswith("pytorch_grad_cam")]
    return found


def test_no_function_level_imports_of_the_package_but_documented_lazy_loading():
    offending = []
    for path in _modules("cli", "demo", "app") + [PACKAGE / "models" / "loading.py",
                                                  PACKAGE / "models" / "hubs.py",
                                                  PACKAGE / "models" / "weights.py",
                                                  PACKAGE / "models" / "network.py",
                                                  PACKAGE / "commands.py"]:
        relative = path.relative_to(PACKAGE).as_posix()
        for name, line in _function_level_imports(path):
            if (relative, name) not in LAZY:
                offending.append(f"{relative}:{line} imports {name} inside a function")
    assert offending == []
