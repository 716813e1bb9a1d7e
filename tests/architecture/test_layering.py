"""The house rules, checked over every package: arrows go only launch -> trainer -> kernels, no
import circle (imports inside functions and under TYPE_CHECKING count too), no module reaches
into another module's private (_underscore) names, kernels/ needs only torch, triton and numpy,
and the standalone sampler only torch and safetensors. docs/ARCHITECTURE.md explains why."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("launch", "trainer", "kernels", "sampler")
# Which of our packages each package may import (itself included). The standalone sampler is a
# leaf (torch + safetensors only); trainer's graph exports reuse its pure-torch sampling graph.
ALLOWED = {
    "launch": {"launch", "trainer", "kernels", "sampler"},
    "trainer": {"trainer", "kernels", "sampler"},
    "kernels": {"kernels"},
    "sampler": {"sampler"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


MODULES = our_modules()


def resolve(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def absolute(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not MODULES[module].name == "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> list[tuple[str, int, list[str]]]:
    """(imported module of ours, line, names imported from it) for every import in the file."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = resolve(alias.name)
                if target:
                    found.append((target, node.lineno, []))
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                # `from pkg import submodule` imports the submodule; anything else comes from pkg.
                target = resolve(f"{source}.{alias.name}")
                if target and target != resolve(source):
                    found.append((target, node.lineno, []))
                elif resolve(source):
                    found.append((resolve(source), node.lineno, [alias.name]))
    return found


def graph() -> dict[str, set[str]]:
    return {m: {target for target, _, _ in imports_of(m) if target != m} for m in MODULES}


def test_arrows_go_only_launch_trainer_kernels():
    wrong = [
        f"{m} (line {line}) imports {target}"
        for m in MODULES
        for target, line, _ in imports_of(m)
        if target.split(".")[0] not in ALLOWED[m.split(".")[0]]
    ]
    assert not wrong, "\n".join(wrong)


# Third-party imports allowed where the package promises few dependencies.
THIRD_PARTY = {"kernels": {"torch", "triton", "numpy"}, "sampler": {"torch", "safetensors"}}


@pytest.mark.parametrize("package", sorted(THIRD_PARTY))
def test_lean_packages_import_only_their_dependencies(package):
    bad = []
    for module in (m for m in MODULES if m.split(".")[0] == package):
        for node in ast.walk(ast.parse(MODULES[module].read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            )
            for name in names:
                top = name.split(".")[0]
                if top not in THIRD_PARTY[package] | {package, "__future__"} | set(sys.stdlib_module_names):
                    bad.append(f"{module} imports {name}")
    assert not bad, bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return out


def test_no_import_circle():
    assert not cycles(graph()), cycles(graph())


def test_the_cycle_finder_finds_a_planted_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def private_uses(module: str) -> list[str]:
    """`from ours import _name` and `ours_alias._name` where the name belongs to another module."""
    tree = ast.parse(MODULES[module].read_text())
    bad, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if resolve(alias.name) and alias.asname:
                    aliases[alias.asname] = resolve(alias.name)
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                target = resolve(f"{source}.{alias.name}")
                if target and target != resolve(source):
                    aliases[alias.asname or alias.name] = target
                elif (
                    resolve(source)
                    and resolve(source) != module
                    and alias.name.startswith("_")
                    and not alias.name.startswith("__")
                ):
                    bad.append(f"{module} (line {node.lineno}) imports {source}.{alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and aliases[node.value.id] != module
        ):
            bad.append(f"{module} (line {node.lineno}) uses {aliases[node.value.id]}.{node.attr}")
    return bad


def test_no_module_uses_another_modules_private_names():
    bad = [line for m in MODULES for line in private_uses(m)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "planted, expect",
    [
        ("from trainer.loop import _secret\n", "imports trainer.loop._secret"),
        ("from trainer import loop\nloop._secret()\n", "uses trainer.loop._secret"),
    ],
)
def test_the_private_name_check_catches_planted_uses(tmp_path, planted, expect, monkeypatch):
    path = ROOT / "trainer" / "_layering_probe.py"
    monkeypatch.setitem(MODULES, "trainer._layering_probe", path)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: planted if self == path else Path.open(self).read())
    assert any(expect in line for line in private_uses("trainer._layering_probe"))
