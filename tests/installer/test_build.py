"""The installer package and the one program built from it (rotation/build/installer.py).

The program is what the documents embed: deterministic (the same bytes on every build), every
module less its comments (the same lines and syntax tree), served to ``import`` by its own finder,
tracebacks naming the module file; and no module of the package is longer than one sitting's
reading (400 lines, issue 20).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rotation.build.installer import (
    PACKAGE_DIR,
    build,
    closure,
    dispatch_imports,
    embedded_modules,
    embedded_sources,
    module_files,
)
from rotation.build.ssm_documents import DOCUMENTS, check_entries, entry_modules, program_text
from tests.installer.helpers import write_program

MAX_MODULE_LINES = 400


def test_the_build_is_deterministic_and_holds_every_module_in_name_order() -> None:
    first, second = build(), build()
    assert first.encode() == second.encode()
    names = [name for name, _ in module_files()]
    assert (
        names == sorted(names) and "certrotate_installer.main" in names and "certrotate_installer.servers.base" in names
    )
    assert list(embedded_modules(first)) == names
    assert str(PACKAGE_DIR) not in first and "/work/" not in first  # no absolute path of the build machine


@pytest.mark.parametrize(("name", "path"), module_files(), ids=[name for name, _ in module_files()])
def test_no_module_is_over_400_lines(name: str, path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines (at most {MAX_MODULE_LINES})"


def test_the_program_runs_from_stdin_and_imports_nothing_from_disk(tmp_path: Path) -> None:
    """As the launcher runs it: ``python3 -I`` reading the program on stdin, in a directory with no
    package; a bad parameter is refused (exit 2) before anything is touched."""
    result = subprocess.run(
        [sys.executable, "-I", "-", "install"],
        input=build(),
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "SSM_SecretArn": "not-an-arn"},
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "parameter SecretArn has a value that is not allowed: 'not-an-arn'" in result.stderr
    assert list(tmp_path.iterdir()) == []


TRACE = """
import importlib.util, sys, traceback
spec = importlib.util.spec_from_file_location("installer", sys.argv[1])
program = importlib.util.module_from_spec(spec)
spec.loader.exec_module(program)
program.install_finder()
from certrotate_installer import certificate
print(certificate.__spec__.origin)
try:
    certificate.pem_blocks(None, "field")
except TypeError:
    traceback.print_exc(file=sys.stdout)
"""


def test_a_traceback_names_the_module_file_and_shows_its_line(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    program = write_program(tmp_path / "elsewhere")  # not the working directory: nothing to import from
    result = subprocess.run(
        [sys.executable, "-I", "-c", TRACE, str(program)], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    origin, *trace = result.stdout.splitlines()
    assert origin == "certrotate_installer/certificate.py"
    frame = next(i for i, line in enumerate(trace) if 'File "certrotate_installer/certificate.py"' in line)
    assert "in pem_blocks" in trace[frame] and trace[frame + 1].strip().startswith("for match in _PEM_BLOCK")


# -- each document embeds only what its command imports (installer.closure) --------------------------

P = "certrotate_installer"
FAKE_TREE = {
    P: "",
    f"{P}.main": (
        "import os\nfrom .host import Host\n\n\ndef main(argv):\n"
        "    if argv[1] == 'crl':\n        from .crl_run import crl_main\n\n        return crl_main()\n"
        "    from . import runs\n\n    return runs.run()\n"
    ),
    f"{P}.host": "import json\nfrom .servers.base import Server\n",
    f"{P}.runs": "def run():\n    from certrotate_installer import late\n",
    f"{P}.late": "",
    f"{P}.servers": "",
    f"{P}.servers.base": "from .. import shared\n",
    f"{P}.shared": "",
    f"{P}.crl_run": "from .host import Host\n\n\ndef crl_main():\n    from .only_crl import fetch\n",
    f"{P}.only_crl": "import urllib.request\n",
    f"{P}.unused": "from . import only_crl\n",
}


def _sources(tree: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(tree.items()))


def test_the_closure_of_a_fake_tree_follows_every_import_but_the_dispatch_of_other_commands() -> None:
    """Module-level and function-level imports, relative (``.``, ``..``, ``from . import x``) and
    absolute, packages of each module; the standard library ignored; main()'s lazy import of another
    command's entry, and a module nothing imports, left out."""
    sources = _sources(FAKE_TREE)
    assert dispatch_imports(sources) == {f"{P}.crl_run", f"{P}.runs"}
    install = closure(sources, ())
    assert install == {P} | {f"{P}.{name}" for name in ("main", "host", "servers", "servers.base", "shared")}
    crl = closure(sources, (f"{P}.crl_run",))
    assert crl == install | {f"{P}.crl_run", f"{P}.only_crl"}
    assert closure(sources, (f"{P}.runs",)) == install | {f"{P}.runs", f"{P}.late"}  # a function's import


def test_an_entry_main_does_not_import_lazily_is_refused() -> None:
    with pytest.raises(ValueError, match=r"certrotate_installer\.host: not imported lazily by certrotate_installer"):
        closure(_sources(FAKE_TREE), (f"{P}.host",))


def test_a_module_only_the_crl_run_imports_stays_out_of_the_other_documents() -> None:
    """The closure is computed from the sources, not listed: a module added later that only the CRL
    run imports is embedded in InstallCRL's program and in no other."""
    sources = dict(embedded_sources())
    sources[f"{P}.crl_extra"] = "import os\n\n\ndef extra():\n    return os.sep\n"
    sources[f"{P}.crl_fetch"] += "\n\ndef _uses_extra():\n    from .crl_extra import extra\n\n    return extra()\n"
    tree = _sources(sources)
    by_document = {document.name: closure(tree, entry_modules(document)) for document in DOCUMENTS}
    assert [name for name, modules in by_document.items() if f"{P}.crl_extra" in modules] == ["InstallCRL"]


def test_install_and_rollback_embed_none_of_the_trust_and_crl_runs() -> None:
    only_theirs = {f"{P}.{name}" for name in ("crl_run", "crl_fetch", "crl_record", "trust_run", "trust_record")}
    only_theirs.add(f"{P}.client_ca_check")
    for document in DOCUMENTS:
        embedded = set(embedded_modules(program_text(document)))
        assert {f"{P}.main", f"{P}.crl", f"{P}.trust_bundle", f"{P}.host_file"} <= embedded, document.name
        if document.action in ("install", "rollback"):
            assert not embedded & only_theirs, document.name
        assert f"{P}.{document.action}_run" in embedded or document.action in ("install", "rollback")


def test_every_lazy_command_of_main_must_be_named_by_a_document() -> None:
    tree = dict(embedded_sources())
    check_entries(_sources(tree))  # the package as it is: each of main()'s lazy imports is a document's entry
    tree[f"{P}.main"] = tree[f"{P}.main"].replace(
        "    return run_certificate(argv, environ)",
        "    if argv[1] == 'audit':\n        from .host import Host\n    return run_certificate(argv, environ)",
    )
    with pytest.raises(ValueError, match=r"certrotate_installer\.host: main\(\) imports it lazily, but no document"):
        check_entries(_sources(tree))
