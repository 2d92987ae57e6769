"""The import direction of the house (README, "Architecture"), read from every module's source.

Every import counts, also those inside functions: a lazy import of a higher floor is still a
dependency on it. The test reads the source with ``ast``, so it checks what the code says, not
only what one interpreter happened to import.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> its import name (pyproject's package-dir).
PACKAGES = {
    "gradgroup": "gradgroup",
    "deploy": "gradgroup.deploy",
    "train": "gradgroup.train",
    "export": "gradgroup.export",
    "calib": "gradgroup.calib",
}
# Which stages each stage may import (itself always). The pipeline (gradgroup/) sits on top.
ALLOWED = {
    "gradgroup.deploy": set(),
    "gradgroup.calib": {"gradgroup.deploy"},
    "gradgroup.train": {"gradgroup.deploy"},
    "gradgroup.export": {"gradgroup.deploy", "gradgroup.train"},
}
STAGES = ("gradgroup.deploy", "gradgroup.calib", "gradgroup.train", "gradgroup.export")
TORCH_FREE = ("gradgroup.deploy", "gradgroup.calib")
# Inside deploy: the graph tools and the scenes are leaves; they may use the contracts only.
LEAVES = {
    "gradgroup.deploy.graph": {"gradgroup.deploy.errors", "gradgroup.deploy.graph"},
    "gradgroup.deploy.scenes": {"gradgroup.deploy.errors", "gradgroup.deploy.scenes"},
}


def _modules():
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            is_pkg = path.name == "__init__.py"
            yield ".".join([name, *parts]), is_pkg, path


def _imports(module: str, is_pkg: bool, path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved)."""
    package = module if is_pkg else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                found.add(target)
                if not node.module:  # from . import x: x is a module of that package
                    found |= {f"{target}.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


MODULES = list(_modules())


def _stage(name: str) -> str | None:
    return next((s for s in STAGES if name == s or name.startswith(s + ".")), None)


def test_the_walk_sees_the_whole_tree():
    names = {m for m, _, _ in MODULES}
    assert {"gradgroup.deploy.runtime", "gradgroup.deploy.scenes.render",
            "gradgroup.deploy.graph.core", "gradgroup.export.verify"} <= names  # fmt: skip
    assert "gradgroup.deploy.scenes.render" in _imports(
        "gradgroup.deploy.scenes", True, ROOT / "deploy" / "scenes" / "__init__.py"
    )


@pytest.mark.parametrize(("module", "is_pkg", "path"), MODULES, ids=[m for m, _, _ in MODULES])
def test_imports_point_down_the_floors(module, is_pkg, path):
    stage = _stage(module)
    imports = _imports(module, is_pkg, path)
    if stage is not None:
        # The top package itself (its __version__) is allowed; its pipeline and CLI are not.
        above = {i for i in imports if i.startswith("gradgroup.") and _stage(i) is None}
        wrong = sorted(i for i in imports if _stage(i) not in (None, stage, *ALLOWED[stage]))
        wrong += sorted(above - {"gradgroup.weights"})
        assert not wrong, f"{module} imports {wrong}: against the floors in README's Architecture"
    if stage in TORCH_FREE:
        assert not {i for i in imports if i.split(".")[0] == "torch"}, f"{module} imports torch"
    for leaf, allowed in LEAVES.items():
        if module == leaf or module.startswith(leaf + "."):
            inside = {i for i in imports if i.startswith("gradgroup.")}
            wrong = sorted(i for i in inside if not any(i == a or i.startswith(a + ".")
                                                         for a in allowed))  # fmt: skip
            assert not wrong, f"{module} is a leaf of deploy but imports {wrong}"
