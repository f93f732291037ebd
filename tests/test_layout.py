"""The library's shape, checked: short functions with few parameters, the variant decided in the
model alone, and imports that flow one way (CLI -> training -> model)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aae"
MAX_LINES, MAX_PARAMS = 60, 6


def _functions():
    for f in sorted(SRC.glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f.name, node


def _params(fn: ast.FunctionDef) -> int:
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    n = len(names) + (a.vararg is not None) + (a.kwarg is not None)
    return n - (names[:1] in (["self"], ["cls"]))


def test_functions_are_short_and_take_few_parameters():
    long = [f"{f}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)"
            for f, fn in _functions() if fn.end_lineno - fn.lineno + 1 > MAX_LINES]
    wide = [f"{f}:{fn.lineno} {fn.name} ({_params(fn)} parameters)"
            for f, fn in _functions() if _params(fn) > MAX_PARAMS]
    assert not long and not wide, long + wide


def test_only_the_model_and_the_config_read_class_input():
    hits = [f"{f.name}:{i}" for f in sorted(SRC.glob("*.py")) if f.name not in ("config.py", "model.py")
            for i, line in enumerate(f.read_text().splitlines(), 1) if "class_input" in line
            and not re.search(r"""["'`].*class_input.*["'`]""", line)]  # messages may name it
    assert not hits, hits


def test_the_model_does_not_import_training_or_the_cli():
    model_side = ("model.py", "regularizers.py", "priors.py", "nets.py", "groups.py", "data.py")
    for name in model_side:
        tree = ast.parse((SRC / name).read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not mods & {"training", "step", "cli", "hooks", "evaluate"}, (name, mods)
