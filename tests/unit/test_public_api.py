"""Every package's ``__all__`` imports, and the root error hierarchy holds."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import chatpersona
from chatpersona.exceptions import ChatpersonaError, InputError, ParameterError

PACKAGES = sorted(
    m.name for m in pkgutil.iter_modules(chatpersona.__path__, "chatpersona.") if m.ispkg
)


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_import(name: str) -> None:
    module = importlib.import_module(name)
    for public in getattr(module, "__all__", []):
        assert hasattr(module, public), f"{name}.__all__ names {public!r} but it is missing"


def test_parameter_error_message_shape() -> None:
    err = ParameterError("DBSCANSegmenter", "eps", "a float > 0", -1)
    assert str(err) == "The 'eps' parameter of DBSCANSegmenter must be a float > 0. Got -1 instead."
    assert isinstance(err, ChatpersonaError)


def test_input_error_names_file_column_row_value() -> None:
    err = InputError("cannot parse date", file="u.csv", column="signup", row=7, value="31/31/2020")
    assert str(err) == "cannot parse date (file u.csv, column 'signup', row 7, value '31/31/2020')"
    assert err.to_dict()["row"] == 7
    assert err.column == "signup"
