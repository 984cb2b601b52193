"""The layer rules of pyproject.toml's ``[tool.importlinter]`` hold (import-linter, run here so
the test command checks them): models and data import no higher layer, inference never
imports training, people (person detector, tracker) sit below inference and training,
models never import people, the service never imports training, evaluation imports no model
code, nothing below the CLI imports it, only the CLI imports the labelling page (label),
``replay`` (a client) imports none of the server but its wire protocol, and predict, export,
render and the service import no library of the ``train`` extra (Lightning, TensorBoard,
matplotlib)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_required_contracts_are_declared():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    rules = {(src, bad) for c in contracts if c["type"] == "forbidden"
             for src in c["source_modules"] for bad in c["forbidden_modules"]}
    pkg = "thermal_action."
    required = {("models", "data"), ("models", "training"), ("data", "models"), ("inference", "training"),
                ("evaluation", "models"), ("training", "cli"), ("inference", "cli"), ("models", "cli"),
                ("people", "inference"), ("people", "training"), ("models", "people"), ("serve", "training"),
                # the labelling page: only the CLI imports it, and it never reaches for training
                ("label", "training"), ("label", "cli"), ("serve", "label"), ("inference", "label"),
                ("data", "label"), ("people", "label"), ("models", "label"), ("evaluation", "label")}
    assert {(pkg + a, pkg + b) for a, b in required} <= rules
    # replay is a client of the service: the wire protocol, none of the server.
    assert {(pkg + "serve.replay", pkg + "serve." + m) for m in ("hub", "store", "workers", "app", "service")} <= rules
    # Every top-level module is placed: the core imports no layer, and nothing but the CLI
    # imports the CLI (a new module outside both lists would escape the rules).
    below_cli = {src for c in contracts if c["name"] == "nothing below the CLI imports it" for src in c["source_modules"]}
    core = {src for c in contracts if c["name"].startswith("the core (") for src in c["source_modules"]}
    top_level = {pkg + p.stem for p in (ROOT / "src" / "thermal_action").iterdir()
                 if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.stem not in ("__init__", "cli", "configs")}
    assert top_level <= below_cli, sorted(top_level - below_cli)
    assert {pkg + m for m in ("config", "structures", "errors", "jsonable", "alert_rule", "progress")} <= core
    # The train extra's libraries stay out of what an install without [train] runs.
    assert {(pkg + a, lib) for a in ("inference", "serve", "models", "data")
            for lib in ("lightning", "matplotlib")} <= rules
    assert {(pkg + "label", lib) for lib in ("lightning", "matplotlib")} <= rules


def test_layer_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe), "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_cycles():
    """No module imports one that (directly or through others) imports it back; function-level
    imports count (a lazy import hides a circle, it does not remove it)."""
    import grimp

    graph = grimp.build_graph("thermal_action", include_external_packages=False)
    cycles = {tuple(sorted((m, n))) for m in graph.modules for n in graph.find_modules_directly_imported_by(m)
              if graph.chain_exists(importer=n, imported=m)}
    assert cycles == set()


def test_package_inits_re_export_nothing():
    """One style of package ``__init__``: a docstring (and code of its own, as the CLI's), never
    names re-exported from the package's modules, eagerly or through a lazy ``__getattr__``:
    names are imported from the module that defines them, so import-linter sees every import
    (a lazy ``__getattr__`` import is invisible to it)."""
    import ast

    offenders = []
    for init in sorted((ROOT / "src" / "thermal_action").rglob("__init__.py")):
        tree = ast.parse(init.read_text())
        for node in tree.body:
            imports_project = (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("thermal_action")
                               or isinstance(node, ast.Import) and any(a.name.startswith("thermal_action")
                                                                       for a in node.names))
            lazy = isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
            exports = isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
            if imports_project or lazy or exports:
                offenders.append(f"{init.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
