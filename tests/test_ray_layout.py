"""The Ray runner's package keeps its shape: no import circle between its files (imports
inside functions counted too: a lazy import that closes a circle is still a knot), and the
files that need no Ray do not import it."""

from __future__ import annotations

import ast
from pathlib import Path

import videofix.pipeline.ray as package

PACKAGE = "videofix.pipeline.ray"
ROOT = Path(package.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in the file (absolute names)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from package import module`
    return out


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in ROOT.glob("*.py") if p.stem != "__init__"}
    return {name: {m.rsplit(".", 1)[1] for m in _imports(path)
                   if m.startswith(PACKAGE + ".") and m.count(".") == PACKAGE.count(".") + 1
                   and m.rsplit(".", 1)[1] in modules} - {name}
            for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_circle_in_the_ray_runner():
    graph = _graph()
    assert {"cluster", "auth", "windows", "driver", "jobs", "nodes", "attempts", "restorer", "coalescer"} <= set(graph)
    assert graph["driver"] >= {"nodes", "attempts", "jobdir", "windows", "restorer"}  # the scan sees imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    # the scan finds a circle when there is one
    assert _cycle({**graph, "windows": graph["windows"] | {"driver"}}) is not None


def test_the_files_that_need_no_ray_do_not_import_it():
    for name in ("windows", "coalescer", "options", "inputs", "figures", "progress", "auth"):
        ray_imports = {m for m in _imports(ROOT / f"{name}.py") if m == "ray" or m.startswith("ray.")}
        if name == "auth":  # Ray's token cache and generated gRPC stubs, imported where they are used
            assert ray_imports and all(m.startswith(("ray._raylet", "ray.core.generated")) for m in ray_imports)
        else:
            assert not ray_imports, (name, ray_imports)
    for name in ("__init__", "windows", "coalescer"):  # nothing from the package that imports Ray
        assert not (_imports(ROOT / f"{name}.py") & {f"{PACKAGE}.{m}" for m in ("cluster", "driver", "jobs")})
