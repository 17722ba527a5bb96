"""The code closure: files that do not parse, and relative imports in a repository-root ``__init__.py``."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from hubguard.errors import UnsafeRepositoryError
from hubguard.loader.closure import code_closure


def _closure(files: Mapping[str, str], entries: list[str]) -> list[str]:
    data = {path: text.encode() for path, text in files.items()}
    return code_closure(entries, data.__getitem__, data.__contains__)


def test_unparsable_file_stays_in_closure() -> None:
    files = {"modeling_x.py": "from . import helpers\ndef broken(:\n", "helpers.py": "X = 1\n"}
    assert _closure(files, ["modeling_x.py"]) == ["modeling_x.py"]


def test_unparsable_helper_still_listed() -> None:
    files = {"modeling_x.py": "from .helpers import X\n", "helpers.py": "X = (\n"}
    assert _closure(files, ["modeling_x.py"]) == ["helpers.py", "modeling_x.py"]


def test_root_init_imports_its_own_name() -> None:
    files = {"__init__.py": "VALUE = 1\nfrom . import VALUE as _again\n", "modeling_x.py": "from . import VALUE\n"}
    assert _closure(files, ["modeling_x.py"]) == ["__init__.py", "modeling_x.py"]


def test_missing_name_without_root_init_refused() -> None:
    with pytest.raises(UnsafeRepositoryError, match="does not match a file"):
        _closure({"modeling_x.py": "from . import nothing_here\n"}, ["modeling_x.py"])
