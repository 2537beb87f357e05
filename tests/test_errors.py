"""attnmodel.errors: one module holds every exception and warning, in one hierarchy."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

import attnmodel
from attnmodel import errors

PACKAGE = Path(attnmodel.__file__).resolve().parent

EXCEPTIONS = {
    errors.VoteDataError: ValueError,
    errors.TableFileError: ValueError,
    errors.NotConvergedError: RuntimeError,
    errors.DiagnosticsError: RuntimeError,
    errors.CommandError: Exception,
}
WARNINGS = (errors.ConvergenceWarning, errors.DiagnosticsWarning)


@pytest.mark.parametrize("cls", list(EXCEPTIONS), ids=lambda c: c.__name__)
def test_every_exception_is_an_attnmodel_error_and_keeps_its_builtin_base(cls):
    assert issubclass(cls, errors.AttnmodelError)
    assert issubclass(cls, EXCEPTIONS[cls])
    with pytest.raises(EXCEPTIONS[cls]):
        raise cls("x")
    with pytest.raises(errors.AttnmodelError):
        raise cls("x")


def test_base_classes():
    assert errors.AttnmodelError.__bases__ == (Exception,)
    assert errors.AttnmodelWarning.__bases__ == (UserWarning,)
    assert not issubclass(errors.AttnmodelError, ValueError)
    assert issubclass(errors.DiagnosticsError, errors.NotConvergedError)


@pytest.mark.parametrize("cls", WARNINGS, ids=lambda c: c.__name__)
def test_every_warning_is_an_attnmodel_warning(cls):
    assert issubclass(cls, errors.AttnmodelWarning) and issubclass(cls, UserWarning)
    with pytest.warns(errors.AttnmodelWarning):
        warnings.warn("x", cls, stacklevel=1)


def test_modules_that_raise_them_use_the_same_classes():
    from attnmodel import filtering
    from attnmodel.inference import em

    assert em.ConvergenceWarning is errors.ConvergenceWarning
    assert filtering.NotConvergedError is errors.NotConvergedError
    assert filtering.DiagnosticsError is errors.DiagnosticsError
    assert filtering.DiagnosticsWarning is errors.DiagnosticsWarning
    assert attnmodel.ConvergenceWarning is errors.ConvergenceWarning


def _defined_classes(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]


def test_no_exception_or_warning_is_defined_outside_the_errors_module():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        names = [n for n in _defined_classes(path) if n.endswith(("Error", "Warning", "Exception"))]
        if names:
            found[str(path.relative_to(PACKAGE))] = names
    assert found == {}
    listed = set(errors.__all__)
    assert {n for n in _defined_classes(PACKAGE / "errors.py")} == listed
    for name in listed:
        cls = getattr(errors, name)
        assert issubclass(cls, (errors.AttnmodelError, errors.AttnmodelWarning)), name
