"""Build the installer package ``ssm_documents/certrotate_installer/`` into the one program the SSM
documents embed, and load the package for the build and the tests.

The program is one generated Python file (standard library only, 3.6+): every module's source, or
for one SSM document only the modules its command can import (``closure``: its imports, read with
``ast``, followed from ``main`` and the command's lazy entry), less
its comments (``#`` to the end of the line) and with each docstring's text blanked (its quotes and
line breaks kept: the installer never reads ``__doc__``). Every line and every statement's column
are kept, so the module parses to the same code down to each node's line and column, which the
build proves, and a traceback's line numbers are the package's. The sources sit in a raw
triple-quoted string, in a table sorted by module name, then a tiny
``importlib`` finder and loader that serves ``certrotate_installer.*`` from that table (each
module compiled with its package path as file name, so a traceback names the module and shows
its line), then ``main``. Not a zipapp: the launcher feeds the program on stdin and nothing may be
written on the host, and ``zipimport`` reads only files; a zip inside the program would also hide
the source that ``--decode`` is there to show. The build is deterministic: no timestamp, no
absolute path, the same bytes on every machine (a test builds twice and compares).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import io
import sys
import tokenize
from collections.abc import Collection
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_NAME = "certrotate_installer"
PACKAGE_DIR = ROOT / "ssm_documents" / PACKAGE_NAME
ENTRY = "certrotate_installer.main"

_HEADER = '''\
"""certrotate installer, built by `python -m rotation.build.ssm_documents` from the package
ssm_documents/certrotate_installer/ (its __init__.py says what it does); do not edit.

MODULES holds each module's source less its comments (the same lines); the finder below serves them to `import`.
"""

import importlib.abc
import importlib.util
import os
import sys

MODULES = {
'''

_FOOTER = '''\
}


class EmbeddedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports certrotate_installer.* from MODULES (no file is read or written)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MODULES:
            return None
        filename = MODULES[fullname][0]
        package = filename.endswith("/__init__.py")
        return importlib.util.spec_from_loader(fullname, self, origin=filename, is_package=package)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        filename, source = MODULES[module.__name__]
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)

    def get_source(self, fullname):
        return MODULES[fullname][1]  # for the lines of a traceback (linecache)


def install_finder():
    if not any(isinstance(finder, EmbeddedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, EmbeddedModules())


if __name__ == "__main__":
    install_finder()
    from certrotate_installer.main import main

    sys.exit(main(sys.argv, dict(os.environ)))
'''


def module_files() -> list[tuple[str, Path]]:
    """(module name, file) of every module of the package, sorted by module name."""
    modules = []
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules.append((name, path))
    return sorted(modules)


def module_filename(path: Path) -> str:
    """The name a module is compiled under: its path from ssm_documents/ (``certrotate_installer/runs.py``)."""
    return path.relative_to(PACKAGE_DIR.parent).as_posix()


def without_comments(source: str) -> str:
    """Pure: ``source`` with each comment cut (with the blanks before it) and nothing else changed.

    A comment-only line stays as an empty line, so every line keeps its number and every token its
    column: the module's syntax tree is the same down to each node's position (``same_tree``).
    """
    lines = source.splitlines(keepends=True)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            row, column = token.start
            line = lines[row - 1]
            ending = line[len(line.rstrip("\r\n")) :]
            lines[row - 1] = line[:column].rstrip(" \t") + ending
    return "".join(lines)


def _docstring(node: ast.AST) -> ast.Expr | None:
    """The docstring statement of a module, class or function, if it has one."""
    if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            return first
    return None


def without_docstrings(source: str) -> str:
    """Pure: ``source`` with the text of each docstring blanked: its quotes and line breaks kept.

    A docstring of two lines becomes three quotes, a line break and three quotes: it starts where it
    did and spans the same lines, so every other node keeps its position (``same_code``).
    """
    lines = source.splitlines(keepends=True)
    spans = []
    for node in ast.walk(ast.parse(source)):
        docstring = _docstring(node)
        if docstring is not None and docstring.end_lineno is not None and docstring.end_col_offset is not None:
            spans.append((docstring.lineno, docstring.col_offset, docstring.end_lineno, docstring.end_col_offset))
    for start_row, start_col, end_row, end_col in sorted(spans, reverse=True):
        head, tail = lines[start_row - 1][:start_col], lines[end_row - 1][end_col:]
        blank = '"""' + "\n" * (end_row - start_row) + '"""'
        lines[start_row - 1 : end_row] = (head + blank + tail).splitlines(keepends=True)
    return "".join(lines)


def _code_dump(source: str) -> str:
    """The syntax tree with positions, each docstring's value and end column left out."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        docstring = _docstring(node)
        if docstring is not None:
            docstring.value = ast.Constant(value="", lineno=docstring.lineno, col_offset=docstring.col_offset)
            docstring.end_col_offset = None
    return ast.dump(tree, include_attributes=True)


def same_tree(first: str, second: str) -> bool:
    """Pure: the two sources parse to the same syntax tree, every node at the same line and column."""
    return ast.dump(ast.parse(first), include_attributes=True) == ast.dump(ast.parse(second), include_attributes=True)


def same_code(first: str, second: str) -> bool:
    """Pure: as :func:`same_tree`, docstrings' text aside (the program blanks it)."""
    return _code_dump(first) == _code_dump(second)


@functools.lru_cache(maxsize=256)
def _embedded(source: str) -> str | None:
    """Pure: ``source`` less its comments and docstrings' text; None when that changed its code.
    Kept by content: the documents, the templates and their tests build the program many times."""
    embedded = without_docstrings(without_comments(source))
    return embedded if same_code(source, embedded) else None


def embedded_sources() -> dict[str, str]:
    """Module name -> the source the program embeds for it: its file less its comments and docstrings' text.

    Raises:
        ValueError: cutting them changed the module's code (it cannot, by construction).
    """
    sources = {}
    for name, path in module_files():
        embedded = _embedded(path.read_text(encoding="utf-8"))
        if embedded is None:
            raise ValueError(f"{path}: cutting its comments and docstrings changed its code")
        sources[name] = embedded
    return sources


def build(entries: tuple[str, ...] | None = None) -> str:
    """The program: deterministic, the same text for the same package and ``entries``.

    Args:
        entries: None for every module of the package; else the program embeds only the modules the
            run can import (:func:`closure`): the package, ``main`` and what they import, and each of
            ``entries``, the modules ``main()`` imports lazily for one command (``trust_run``), with
            what they import.

    Raises:
        ValueError: a module holds ``\'\'\'`` or ends in a backslash (it could not be embedded
            verbatim), the program holds ``{{`` (SSM would substitute it), or an entry is not one of
            ``main()``'s lazy imports.
    """
    files = module_files()
    sources = embedded_sources()
    if entries is not None:
        kept = closure(tuple(sorted(sources.items())), entries)
        files = [(name, path) for name, path in files if name in kept]
    return _program(tuple((name, module_filename(path), sources[name]) for name, path in files))


def _resolve(importer: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: Collection[str]) -> set[str]:
    """Pure: the package's modules ``node`` (in module ``importer``) imports; others (stdlib) ignored.

    ``from .x import y`` imports ``x.y`` where ``y`` is a module of package ``x``, else ``x``.
    """
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = importer.split(".")
            parts = parts if is_package else parts[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        submodules = {f"{base}.{alias.name}" for alias in node.names} & set(modules)
        targets = sorted(submodules) or [base]  # a module's packages come with it (closure)
    return {target for target in targets if target in modules}


def _imports(name: str, source: str, modules: Collection[str]) -> tuple[set[str], set[str]]:
    """Pure: (what module ``name`` imports, module-level and in its functions; what ``main()`` of the
    entry module imports lazily, its dispatch, which only :func:`closure`'s ``entries`` follow)."""
    is_package = any(other.startswith(f"{name}.") for other in modules)
    tree = ast.parse(source)
    dispatch: set[ast.AST] = set()
    if name == ENTRY:
        for statement in tree.body:
            if isinstance(statement, ast.FunctionDef) and statement.name == "main":
                dispatch = set(ast.walk(statement))
    imported: set[str] = set()
    lazy: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            (lazy if node in dispatch else imported).update(_resolve(name, is_package, node, modules))
    return imported, lazy


def dispatch_imports(sources: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """Pure: the modules ``main()`` of :data:`ENTRY` imports lazily, one command's each (``trust_run``)."""
    modules = {name for name, _ in sources}
    return frozenset(_imports(ENTRY, dict(sources)[ENTRY], modules)[1])


@functools.lru_cache(maxsize=16)
def closure(sources: tuple[tuple[str, str], ...], entries: tuple[str, ...]) -> frozenset[str]:
    """Pure: the modules of ``sources`` (name, source) a run of the program can import: the package,
    :data:`ENTRY` and ``entries`` (some of ``main()``'s lazy imports), each with its packages and,
    transitively, every module it imports, at module level or in a function (``main()``'s dispatch
    aside: a command's lazy import is followed only when it is one of ``entries``).

    Raises:
        ValueError: an entry is not one of ``main()``'s lazy imports.
    """
    modules = dict(sources)
    stray = set(entries) - dispatch_imports(sources)
    if stray:
        raise ValueError(f"{', '.join(sorted(stray))}: not imported lazily by {ENTRY}.main() (a command's entry)")
    kept: set[str] = set()
    pending = [PACKAGE_NAME, ENTRY, *entries]
    while pending:
        name = pending.pop()
        if name in kept:
            continue
        kept.add(name)
        parts = name.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts))}
        pending.extend(sorted((_imports(name, modules[name], modules)[0] | parents) - kept))
    return frozenset(kept)


@functools.lru_cache(maxsize=8)
def _program(modules: tuple[tuple[str, str, str], ...]) -> str:
    """Pure: the program embedding ``modules`` (name, file name, embedded source), checked."""
    entries = []
    sources = {name: source for name, _, source in modules}
    for name, filename, source in modules:
        if "'''" in source or source.endswith("\\"):
            raise ValueError(f"{filename} cannot be embedded verbatim: it holds ''' or ends with a backslash")
        entries.append(f"    {name!r}: ({filename!r}, r'''{source}'''),\n")
    program = _HEADER + "".join(entries) + _FOOTER
    if "{{" in program:
        raise ValueError("the installer must not contain '{{': SSM would substitute it")
    if embedded_modules(program) != sources:
        raise ValueError("a module does not survive embedding byte for byte")
    return program


def embedded_modules(program: str) -> dict[str, str]:
    """Module name -> source, as the built ``program`` holds them (read, never run)."""
    tree = ast.parse(program)
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MODULES" for t in node.targets)
    )
    modules: dict[str, tuple[str, str]] = ast.literal_eval(table)
    return {name: source for name, (_, source) in modules.items()}


def load_package() -> ModuleType:
    """The package, imported from ``ssm_documents/`` (it is no part of the ``rotation`` package)."""
    loaded = sys.modules.get(PACKAGE_NAME)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(
        PACKAGE_NAME, PACKAGE_DIR / "__init__.py", submodule_search_locations=[str(PACKAGE_DIR)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {PACKAGE_DIR}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE_NAME] = module
    spec.loader.exec_module(module)
    return module


def load_module(name: str) -> ModuleType:
    """``certrotate_installer.<name>`` (``"parameters"``, ``"servers.apache"``)."""
    load_package()
    return importlib.import_module(f"{PACKAGE_NAME}.{name}")
