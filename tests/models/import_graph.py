"""The import graph of a package, read from its source with ``ast``."""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def module_files(package_dir: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package
    (``pkg.sub`` for ``pkg/sub/__init__.py``)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join([package] + parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module, functions: bool = False) -> Iterator[ast.stmt]:
    """The import statements that run when the module is imported: those at
    the top, in ``if``/``try``/``with`` blocks and class bodies, not those in
    functions (unless ``functions``) or under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, FUNCTION_NODES) and not functions:
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(reversed(node.orelse))
        elif isinstance(node, ast.stmt):
            stack.extend(reversed([child for child in ast.iter_child_nodes(node)
                                   if isinstance(child, ast.stmt)]))


def all_imports(tree: ast.Module) -> Iterator[ast.stmt]:
    """The import statements that may run: those of
    :func:`module_level_imports` and those inside functions."""
    return module_level_imports(tree, functions=True)


def function_level_imports(tree: ast.Module) -> Iterator[tuple[str, ast.stmt]]:
    """(function name, import statement) for the imports inside functions."""
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield function.name, node


def imported_modules(node: ast.stmt, module: str, is_package: bool,
                     modules: dict[str, Path]) -> list[str]:
    """The modules of ``modules`` whose code an import statement needs:
    ``import X`` needs X; ``from X import y`` needs the module X.y where
    there is one, else X (whose ``__init__`` defines y). Relative imports
    are resolved against the importing module's package."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    found = []
    for alias in node.names:
        submodule = f"{origin}.{alias.name}"
        if submodule in modules:
            found.append(submodule)
        elif origin in modules:
            found.append(origin)
    return found


def import_graph(modules: dict[str, Path], package: str,
                 imports=module_level_imports) -> dict[str, set[str]]:
    """Module -> the modules of the package that importing it imports.

    Importing ``pkg.a.b`` runs ``pkg/a/__init__.py`` first, so an import of
    ``pkg.a.b`` from outside ``pkg.a`` is also an edge to ``pkg.a``; the
    root package and the importing module's own packages (initialised
    before the module itself) are left out of these implied edges.
    """
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        own = set()
        parts = module.split(".")
        for end in range(1, len(parts) + (0 if not is_package else 1)):
            own.add(".".join(parts[:end]))
        targets: set[str] = set()
        for node in imports(ast.parse(path.read_text(), str(path))):
            for name in imported_modules(node, module, is_package, modules):
                targets.add(name)
                name_parts = name.split(".")
                for end in range(2, len(name_parts)):
                    parent = ".".join(name_parts[:end])
                    if parent in modules and parent not in own:
                        targets.add(parent)
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) for every strongly connected group of
    modules that import each other, via Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected group."""
    members = set(group)
    start = group[0]
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & members):
            if target == start:
                path = [node]
                while previous[path[-1]] is not None:
                    path.append(previous[path[-1]])  # type: ignore[arg-type]
                return list(reversed(path)) + [start]
            if target not in previous:
                previous[target] = node
                queue.append(target)
    raise AssertionError(f"{group} is not a cycle")
