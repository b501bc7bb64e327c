"""The package's layers import only downwards: base < data < config < heads < models < serve < eval < train < cli."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "deeppose"
LAYERS = ["base", "data", "config", "heads", "models", "serve", "eval", "train", "top"]
BASE = {"errors", "paths", "files", "skeleton", "geometry", "visualize", "__init__"}


def layer(module: str) -> str:
    """The layer of a module `deeppose.x.y` (README, Architecture)."""
    parts = module.split(".")
    if len(parts) == 1:  # `from deeppose import __version__`: the package's __init__
        return "base"
    if parts[1] in ("cli", "demo", "__main__"):
        return "top"
    return "base" if parts[1] in BASE else parts[1]


def test_every_package_is_a_layer():
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == {"data", "heads", "models", "serve", "eval", "train", "cli"}
    modules = {p.stem for p in SRC.glob("*.py")}
    assert modules <= BASE | {"config", "demo", "__main__"}, modules - BASE


def test_imports_flow_one_way():
    upward = []
    for path in SRC.rglob("*.py"):
        module = ".".join(["deeppose", *path.relative_to(SRC).with_suffix("").parts])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("deeppose") and LAYERS.index(layer(name)) > LAYERS.index(layer(module)):
                    upward.append(f"{module} imports {name}")
    assert not upward, upward


def test_no_module_over_400_lines_and_no_function_over_60():
    long = []
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            long.append(f"{path.name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.name}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, long
