"""The package layout is a rule, not a habit: each package imports only what its docstring allows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "seq2seq"

# What each part may import from seq2seq (besides itself). Shared top-level modules are named by module.
SHARED = {"seq2seq.decode_options", "seq2seq.config", "seq2seq.config_checks", "seq2seq.checkpoint"}
ALLOWED = {
    "seq2seq.models": set(),
    "seq2seq.data": set(),
    # runtime: evaluate.py and serve.py load an exported model with runtime=onnx.
    "seq2seq.inference": {"seq2seq.models", "seq2seq.data", "seq2seq.runtime"} | SHARED,
    "seq2seq.training": {"seq2seq.models", "seq2seq.data", "seq2seq.inference"} | SHARED,
    "seq2seq.decode_options": set(),
    "seq2seq.config": {"seq2seq.decode_options"},
    "seq2seq.config_checks": {"seq2seq.models", "seq2seq.data", "seq2seq.decode_options", "seq2seq.config"},
    "seq2seq.checkpoint": {"seq2seq.data"},
    "seq2seq.cli": {"seq2seq.training"},
    "seq2seq.commands": {"seq2seq.cli", "seq2seq.config", "seq2seq.training", "seq2seq.inference", "seq2seq.export"},
    "seq2seq.__main__": {"seq2seq.commands"},
    "seq2seq.export": {"seq2seq.models", "seq2seq.data", "seq2seq.inference", "seq2seq.runtime"} | SHARED,
    # Named modules, not packages: the runtime must not import torch (tests/unit/test_runtime_without_torch.py).
    "seq2seq.runtime": {"seq2seq.decode_options", "seq2seq.data.tokenizer", "seq2seq.data.atomic",
                        "seq2seq.inference.translation", "seq2seq.inference.text_encoding",
                        "seq2seq.inference.length_batches", "seq2seq.inference.text_translator"},
}


def part_of(module: str) -> str:
    """``seq2seq.inference.search`` -> ``seq2seq.inference``; ``seq2seq.cli`` -> ``seq2seq.cli``."""
    return ".".join(module.split(".")[:2])


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name for name in names if name == "seq2seq" or name.startswith("seq2seq.")}


def module_files() -> list[tuple[str, Path]]:
    files = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        files.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return files


@pytest.mark.parametrize("module, path", module_files(), ids=lambda value: str(value))
def test_each_module_imports_only_what_its_package_allows(module, path):
    part = part_of(module)
    if part == "seq2seq":
        return  # the package's own __init__
    assert part in ALLOWED, f"{module}: a new part of the package; say in seq2seq/__init__.py what it may import"
    for imported in imported_modules(path):
        target = part_of(imported)
        allowed = target == part or target in ALLOWED[part] or imported in ALLOWED[part]
        assert allowed, f"{module} imports {imported}, which {part} may not"


def test_every_package_says_what_it_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "May import" in docstring, f"{init}: its docstring does not say what the package may import"


def test_no_module_is_longer_than_about_400_lines():
    long = {str(path.relative_to(PACKAGE)): n for _, path in module_files() if (n := len(path.read_text().splitlines())) > 420}
    assert not long, f"modules over ~400 lines (split them): {long}"
