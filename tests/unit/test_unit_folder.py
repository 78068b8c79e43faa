"""tests/unit holds tests that need no application and no database: the folder name says what a test needs.

The test files here are read with `ast` (not imported) and every test function's fixtures are followed through
the conftest.py files that apply to tests/unit and the module's own fixtures. A test that reaches a database or
application fixture (directly or through another fixture such as `make_case` or `storage`) belongs in
tests/services/ instead.
"""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
UNIT = TESTS / "unit"
# Fixtures that stand for an application, its database or a database server (tests/conftest.py).
NEEDS_DB_OR_APP = frozenset({"app", "pg_app", "db", "session", "client", "pg_database", "postgres"})
NOT_FIXTURES = frozenset({"self", "cls", "request"})


def _decorator_call(node: ast.expr) -> tuple[str, ast.Call | None]:
    """('fixture', call) for @pytest.fixture(...), ('usefixtures', call) for @pytest.mark.usefixtures(...)..."""
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call else node
    return (target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")), call


def _strings(nodes) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _parametrized(func: ast.FunctionDef) -> set[str]:
    names: set[str] = set()
    for dec in func.decorator_list:
        kind, call = _decorator_call(dec)
        if kind == "parametrize" and call and call.args:
            first = call.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names |= {n.strip() for n in first.value.split(",")}
            elif isinstance(first, (ast.List, ast.Tuple)):
                names |= set(_strings(first.elts))
    return names


def _usefixtures(decorators) -> set[str]:
    used: set[str] = set()
    for dec in decorators:
        kind, call = _decorator_call(dec)
        if kind == "usefixtures" and call:
            used |= set(_strings(call.args))
    return used


def _requested(func: ast.FunctionDef, extra: set[str] = frozenset()) -> set[str]:
    """The fixtures a function asks for: its arguments, usefixtures marks, request.getfixturevalue("...")."""
    args = func.args.posonlyargs + func.args.args + func.args.kwonlyargs
    names = {a.arg for a in args} - NOT_FIXTURES - _parametrized(func)
    names |= _usefixtures(func.decorator_list) | set(extra)
    for node in ast.walk(func):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getfixturevalue"):
            names |= set(_strings(node.args))
    return names


def _fixtures(tree: ast.Module) -> dict[str, set[str]]:
    """name -> fixtures it requests, for every @pytest.fixture in a module (honouring name=...)."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for dec in node.decorator_list:
            kind, call = _decorator_call(dec)
            if kind == "fixture":
                name = node.name
                for kw in (call.keywords if call else []):
                    if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                        name = kw.value.value
                found[name] = _requested(node)
    return found


def _module_marks(tree: ast.Module) -> set[str]:
    """usefixtures in a module-level `pytestmark = ...`."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
            marks = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            return _usefixtures(marks)
    return set()


def _tests(tree: ast.Module):
    """(name, function, class-level usefixtures) for test functions and methods of Test classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            yield node.name, node, set()
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    yield f"{node.name}::{item.name}", item, _usefixtures(node.decorator_list)


def _path_to_db_or_app(name: str, fixtures: dict[str, set[str]], seen: tuple[str, ...] = ()) -> list[str] | None:
    """The chain of fixtures from `name` to an app/database fixture, or None when there is none."""
    if name in NEEDS_DB_OR_APP:
        return [name]
    if name in seen:
        return None
    for needed in sorted(fixtures.get(name, ())):
        chain = _path_to_db_or_app(needed, fixtures, seen + (name,))
        if chain:
            return [name] + chain
    return None


def _conftest_fixtures() -> dict[str, set[str]]:
    fixtures: dict[str, set[str]] = {}
    for conftest in (TESTS / "conftest.py", UNIT / "conftest.py"):  # outermost first: inner ones override
        if conftest.exists():
            fixtures.update(_fixtures(ast.parse(conftest.read_text(), filename=str(conftest))))
    return fixtures


def offenders(folder: Path = UNIT) -> list[str]:
    shared = _conftest_fixtures()
    found = []
    for path in sorted(folder.rglob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        fixtures = {**shared, **_fixtures(tree)}
        module_marks = _module_marks(tree)
        for name, func, class_marks in _tests(tree):
            for requested in sorted(_requested(func, module_marks | class_marks)):
                chain = _path_to_db_or_app(requested, fixtures)
                if chain:
                    shown = path.relative_to(TESTS.parent) if path.is_relative_to(TESTS.parent) else path
                    found.append(f"{shown}::{name} needs {' -> '.join(chain)}")
                    break
    return found


def test_no_test_in_tests_unit_needs_an_app_or_a_database():
    found = offenders()
    assert not found, (
        "tests/unit is for tests without an app or a database; move these files to tests/services/ "
        "(git mv), or drop the fixture:\n  " + "\n  ".join(found))


def test_the_guard_sees_direct_indirect_and_hidden_fixture_requests(tmp_path):
    (tmp_path / "test_sample.py").write_text('''
import pytest

pytestmark = [pytest.mark.usefixtures("unrelated")]

@pytest.fixture
def case(make_case):
    return make_case("closed")

@pytest.fixture
def dynamic(request):
    return request.getfixturevalue("postgres")

def test_pure(tmp_path):
    pass

@pytest.mark.parametrize("db", [1, 2])
def test_parameter_named_db(db):
    pass

def test_direct(db):
    pass

def test_through_fixtures(case):
    pass

def test_dynamic(dynamic):
    pass

@pytest.mark.usefixtures("client")
class TestMarked:
    def test_method(self):
        pass
''')
    found = offenders(tmp_path)
    names = [line.split("::", 1)[1] for line in found]
    assert names == ["test_direct needs db", "test_through_fixtures needs case -> make_case -> db",
                     "test_dynamic needs dynamic -> postgres", "TestMarked::test_method needs client"], found
