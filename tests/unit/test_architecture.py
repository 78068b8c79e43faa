"""The architecture as a test: the import contract in .importlinter, and the size limit on modules.

A back-import (a domain reaching up into the workflow, core reaching into a domain, two peer domains
knowing each other) fails here with import-linter's own explanation of which line broke which rule.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 600


def _lint(config: Path, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    return subprocess.run([str(LINT_IMPORTS), "--config", str(config), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contract_holds():
    result = _lint(ROOT / ".importlinter", ROOT, ROOT)
    assert result.returncode == 0, "The import contract (.importlinter) is broken:\n" + result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_the_contract_would_catch_core_importing_a_domain(tmp_path):
    """The same kind of contract on a two-module package: a core module importing a domain is reported."""
    package = tmp_path / "miniportal"
    (package / "cases").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cases" / "__init__.py").write_text("")
    (package / "cases" / "models.py").write_text("from miniportal import db\n")
    (package / "db.py").write_text("def models():\n    from miniportal.cases import models\n    return models\n")
    config = tmp_path / "contract.ini"
    config.write_text(textwrap.dedent("""\
        [importlinter]
        root_package = miniportal

        [importlinter:contract:layers]
        name = Domains above core
        type = layers
        containers =
            miniportal
        exhaustive = true
        layers =
            cases
            db
        """))
    result = _lint(config, tmp_path, tmp_path)
    assert result.returncode != 0
    assert "miniportal.db is not allowed to import miniportal.cases" in result.stdout


def test_every_module_is_at_most_600_lines():
    """Migrations aside: a longer module is doing more than one thing and should be split by what it does."""
    too_long = {}
    for path in (ROOT / "review_portal").rglob("*.py"):
        if "migrations" in path.relative_to(ROOT).parts:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            too_long[str(path.relative_to(ROOT))] = lines
    assert too_long == {}, f"Modules over {MAX_LINES} lines: {too_long}"
