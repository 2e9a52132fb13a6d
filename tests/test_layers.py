"""The package's floor plan (docs/design.md, "Layers"): modules import downward only.

Read with `ast` from the sources, so it holds for every import, not only those a test runs:
- no import cycle among seqrec's modules (a package counts as its `__init__`, and importing
  `a.b` imports `a` first);
- no module imports one of a higher layer (`LAYERS`);
- no import of seqrec's own modules inside a function, and inside functions only the optional
  extras (`OPTIONAL`), which are imported where they are used so that seqrec works without them.

Run `python tests/test_layers.py` to print the graph's layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom to top. A module may import modules of its own layer or below; prefixes match
# packages (`seqrec.data` covers `seqrec.data.lastfm`).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("seqrec", "seqrec.io", "seqrec.progress", "seqrec.provenance", "seqrec.device",
     "seqrec.models.registry", "seqrec.data.options"),
    ("seqrec.config", "seqrec.record", "seqrec.board", "seqrec.claim"),
    ("seqrec.data", "seqrec.models", "seqrec.metrics", "seqrec.checkpoint", "seqrec.ranks"),
    ("seqrec.train",),
    ("seqrec.experiment", "seqrec.validate", "seqrec.report"),
    ("seqrec.experiments",),
    ("seqrec.runner", "seqrec.plan", "seqrec.ray_tracker", "seqrec.ray_backend"),
    ("seqrec.app", "seqrec.preflight", "seqrec.notebook_errors"),
    ("seqrec.notebook", "seqrec.cli"),
    ("seqrec.__main__",),
)
OPTIONAL = {"ray", "nbclient", "nbformat", "tensorboard", "torch.utils.tensorboard",
            "google.colab", "IPython", "IPython.display", "ipywidgets"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(), str(p))
            for p in sorted((SRC / "seqrec").rglob("*.py"))}


def _resolve(name: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".")
    is_package = (SRC / Path(*base) / "__init__.py").exists()
    keep = len(base) - node.level + (1 if is_package else 0)
    return ".".join(base[:keep] + ([node.module] if node.module else []))


def _imports(name: str, tree: ast.Module, known: set[str]) -> list[tuple[str, ast.AST, bool]]:
    """(imported seqrec module, node, inside a function) for every import in `tree`; an
    import under `if TYPE_CHECKING:` is not one."""
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                mod = _resolve(name, child)
                targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod
                           for a in child.names]
            for t in targets:
                out.append((t, child, inside))
            visit(child, inside)

    visit(tree, False)
    return out


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]], list[str]]:
    """Module-level import edges among seqrec modules: `run` (what importing a module runs: the
    module named and every package above it, but not a module's own packages, which Python has
    begun before it) and `named` (only the modules named); and the imports found inside
    functions that are not optional extras."""
    trees = _modules()
    known = set(trees)
    run: dict[str, set[str]] = {m: set() for m in known}
    named: dict[str, set[str]] = {m: set() for m in known}
    inner = []
    optional_roots = {o.split(".")[0] for o in OPTIONAL}
    for name, tree in trees.items():
        for target, node, inside in _imports(name, tree, known):
            root = target.split(".")[0]
            if inside:
                if root == "seqrec" or root not in optional_roots:
                    inner.append(f"{name}:{node.lineno} imports {target} inside a function")
                continue
            if root != "seqrec":
                continue
            if target in known and target != name:
                named[name].add(target)
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                mod = ".".join(parts[:i])
                if mod in known and mod != name and not name.startswith(mod + "."):
                    run[name].add(mod)
    return run, named, inner


def _layer(name: str) -> int:
    best, length = -1, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            # "seqrec" names the package's own __init__ alone, not everything below it
            below = prefix != "seqrec" and name.startswith(prefix + ".")
            if (name == prefix or below) and len(prefix) > length:
                best, length = i, len(prefix)
    return best


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return found


def test_no_import_cycle():
    run, _, _ = _graph()
    assert _cycles(run) == []


def test_every_module_has_a_layer_and_imports_downward_only():
    _, named, _ = _graph()
    assert [m for m in named if _layer(m) < 0] == []
    upward = [f"{a} ({_layer(a)}) imports {b} ({_layer(b)})" for a in sorted(named)
              for b in sorted(named[a]) if _layer(b) > _layer(a)
              and not b.startswith(a + ".")]  # a package's __init__ may name its modules
    assert upward == []


def test_no_import_inside_a_function_but_optional_extras():
    _, _, inner = _graph()
    assert inner == []


def test_the_checker_sees_cycles_and_upward_imports():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(edges) == [["a", "b", "c"]]
    assert _layer("seqrec.cli") > _layer("seqrec.runner") > _layer("seqrec.train.run")
    assert _layer("seqrec.a_module_no_layer_names") == -1


if __name__ == "__main__":
    graph, _, _ = _graph()
    for i in range(len(LAYERS)):
        print(i, ", ".join(sorted(m for m in graph if _layer(m) == i)))
