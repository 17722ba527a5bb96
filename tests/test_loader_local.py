"""Loader tests for local folders: plain folders, git checkouts, unsafe content and lock files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from _fixtures_loader import (
    CODE_FILES,
    blob_at,
    cache_entries,
    isolated_env,  # noqa: F401  # fixture
    make_two_commit_repo,
    sha256_hex,
    tiny_model_files,
)
from _olah import commit_files
from hubguard.errors import (
    FetchError,
    IntegrityError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    UnpinnedRevisionError,
    UnsafeRepositoryError,
)
from hubguard.loader import FetchLimits, LockFile, fetch, lock
from hubguard.loader.snapshot import RejectedFile

# Hostile repository content; none of it may be read as code.
LATIN1_SOURCE = "# -*- coding: latin-1 -*-\nNAME = 'caf\xe9'\n".encode("latin-1")
INVALID_UTF8_SOURCE = b"NAME = 'caf\xe9'\n"
NEVER_LOADED = {
    "__pycache__/modeling_tiny.cpython-311.pyc": b"\x00compiled",
    "helpers.pyc": b"\x00compiled",
    "_speedups.cpython-311-x86_64-linux-gnu.so": b"\x7fELF",
    "native.pyd": b"MZ",
    "evil.pth": b"import os; os.system('touch marker')\n",
    "sitecustomize.py": "open('marker', 'w')\n",
}


# A model split over a sub-package, with every spelling of a relative import; the
# docstring and the comment mention modules that do not exist and must not be followed.
SPLIT_MODEL = {
    "config.json": json.dumps({"auto_map": {"AutoModel": "modeling_split.SplitModel"}}),
    "modeling_split.py": (
        '"""Split model.\n\nExample::\n\n    from .missing_in_docstring import Nothing\n"""\n'
        "from . import helpers\n"
        "from .configuration_split import SplitConfig\n"
        "from .layers import (\n"
        "    Block,\n"
        "    Norm,\n"
        ")\n"
        "from .utils.posenc import encode\n"
        "# from .missing_in_comment import Nothing\n\n\n"
        "class SplitModel:\n"
        "    config_class = SplitConfig\n"
    ),
    "configuration_split.py": "class SplitConfig:\n    width = 4\n",
    "helpers.py": "def clamp(value):\n    return max(0, value)\n",
    "layers.py": "class Block:\n    pass\n\n\nclass Norm:\n    pass\n",
    "utils/__init__.py": "",
    "utils/posenc.py": "from ..helpers import clamp\n\n\ndef encode(value):\n    return clamp(value)\n",
    # Imports from above the repository root on line 3.
    "modeling_escape.py": '"""Escapes."""\n\nfrom .. import outside_the_repo\n',
    "unused-helper.py": "X = 1\n",
}


def write_folder(folder: Path, files: dict[str, str | bytes]) -> Path:
    for path, content in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return folder


def expected_content_id(folder: Path) -> str:
    lines = b""
    for path in sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()):
        lines += path.encode() + b"\0" + sha256_hex((folder / path).read_bytes()).encode() + b"\n"
    return "sha256:" + hashlib.sha256(lines).hexdigest()


@pytest.fixture
def plain_folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "acme" / "tiny", tiny_model_files("one", 1))


def test_plain_folder_loads_with_content_id(isolated_env: Path, plain_folder: Path) -> None:
    snapshot = fetch(str(plain_folder))
    assert snapshot.source.kind == "local"
    assert snapshot.source.location == str(plain_folder)
    assert snapshot.revision.requested is None
    assert snapshot.revision.commit == expected_content_id(plain_folder)
    assert snapshot.code_paths == CODE_FILES
    assert sorted(snapshot.files) == sorted(["config.json", *CODE_FILES, "model.safetensors"])
    assert snapshot.files["model.safetensors"].sha256 == sha256_hex(b"one" * 512)
    assert snapshot.read_bytes("model.safetensors") == b"one" * 512
    assert snapshot.blob_paths["model.safetensors"].is_relative_to(isolated_env)


def test_plain_folder_accepts_its_content_id(isolated_env: Path, plain_folder: Path) -> None:
    identity = expected_content_id(plain_folder)
    assert fetch(str(plain_folder), revision=identity).revision.commit == identity
    (plain_folder / "helpers.py").write_text('HELPER_VERSION = "changed"\n')
    with pytest.raises(IntegrityError, match=f"content id of folder .* but the requested revision is {identity}"):
        fetch(str(plain_folder), revision=identity)


def test_plain_folder_refuses_branch_name(isolated_env: Path, plain_folder: Path) -> None:
    with pytest.raises(RevisionNotFoundError, match="is not a git checkout, so revision 'main' cannot be found"):
        fetch(str(plain_folder), revision="main")


def test_dot_resolves_to_absolute_folder(isolated_env: Path, plain_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(plain_folder)
    snapshot = fetch(".")
    assert snapshot.source.location == str(plain_folder)


def test_git_checkout_reports_head(isolated_env: Path, tmp_path: Path) -> None:
    work = tmp_path / "acme" / "tiny"
    _, two = make_two_commit_repo(work)
    snapshot = fetch(str(work))
    assert snapshot.revision.commit == two
    for path in CODE_FILES:
        assert snapshot.files[path].git_blob == blob_at(work, two, path)


def test_dirty_checkout_loads_as_plain_folder(isolated_env: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    work = tmp_path / "acme" / "tiny"
    make_two_commit_repo(work)
    (work / "helpers.py").write_text('HELPER_VERSION = "edited"\n')
    snapshot = fetch(str(work))
    assert snapshot.revision.commit == expected_content_id_without_git(work)
    assert snapshot.read_text("helpers.py") == 'HELPER_VERSION = "edited"\n'
    assert "whose files differ from HEAD" in caplog.text
    assert "(helpers.py)" in caplog.text


def expected_content_id_without_git(folder: Path) -> str:
    copy = folder.parent / "copy-without-git"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".git"))
    return expected_content_id(copy)


def test_checkout_with_revision_reads_that_commit(isolated_env: Path, tmp_path: Path) -> None:
    work = tmp_path / "acme" / "tiny"
    one, _ = make_two_commit_repo(work)
    snapshot = fetch(str(work), revision=one)
    assert snapshot.revision.commit == one
    assert snapshot.read_text("helpers.py") == 'HELPER_VERSION = "one"\n'


def test_never_loaded_files_are_listed_as_rejected(isolated_env: Path, plain_folder: Path) -> None:
    write_folder(plain_folder, NEVER_LOADED)
    snapshot = fetch(str(plain_folder))
    assert [item.path for item in snapshot.rejected] == sorted(NEVER_LOADED)
    assert RejectedFile(path="evil.pth", reason="path configuration file (.pth) that site.py may execute") in snapshot.rejected
    for path in NEVER_LOADED:
        assert not snapshot.has(path)
    assert snapshot.code_paths == CODE_FILES


def test_auto_map_traversal_refused(isolated_env: Path, plain_folder: Path) -> None:
    config = json.loads((plain_folder / "config.json").read_text())
    config["auto_map"]["AutoModel"] = "..evil.Model"
    (plain_folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsafeRepositoryError, match="module path '//evil.py' is absolute") as error:
        fetch(str(plain_folder))
    assert error.value.rule_id == "HG105"


def test_auto_map_module_not_identifier_refused(isolated_env: Path, plain_folder: Path) -> None:
    config = json.loads((plain_folder / "config.json").read_text())
    config["auto_map"]["AutoModel"] = "modeling-tiny.TinyModel"
    (plain_folder / "config.json").write_text(json.dumps(config))
    (plain_folder / "modeling-tiny.py").write_text("X = 1\n")
    with pytest.raises(UnsafeRepositoryError, match="'modeling-tiny' in 'modeling-tiny.py' is not a valid Python module name"):
        fetch(str(plain_folder))


def test_symlink_leaving_folder_refused(isolated_env: Path, plain_folder: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("TOKEN = 'x'\n")
    (plain_folder / "helpers.py").unlink()
    (plain_folder / "helpers.py").symlink_to(secret)
    with pytest.raises(UnsafeRepositoryError, match=f"symlink points outside the folder, to {secret}") as error:
        fetch(str(plain_folder))
    assert error.value.rule_id == "HG109"
    assert error.value.path == "helpers.py"


def test_oversized_code_file_refused(isolated_env: Path, plain_folder: Path) -> None:
    (plain_folder / "helpers.py").write_text("X = 1\n" + "#" * 2000 + "\n")
    with pytest.raises(UnsafeRepositoryError, match="file is 2007 bytes, more than the limit of 1000 bytes") as error:
        fetch(str(plain_folder), limits=FetchLimits(max_file_size=1000))
    assert error.value.path == "helpers.py"
    assert cache_entries(isolated_env) == []


def test_oversized_weights_refused(isolated_env: Path, plain_folder: Path) -> None:
    with pytest.raises(UnsafeRepositoryError, match="file is 1536 bytes, more than the limit of 1000 bytes"):
        fetch(str(plain_folder), limits=FetchLimits(max_weight_size=1000))


def test_too_many_files_refused(isolated_env: Path, plain_folder: Path) -> None:
    with pytest.raises(UnsafeRepositoryError, match="lists 5 files at this commit, more than the limit of 4"):
        fetch(str(plain_folder), limits=FetchLimits(max_files=4))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (LATIN1_SOURCE, "source declares encoding 'iso-8859-1'; only UTF-8 is accepted"),
        # CPython's tokenizer rejects undeclared non-UTF-8 bytes before decoding, as compile() does.
        (INVALID_UTF8_SOURCE, "invalid source encoding declaration: invalid or missing encoding declaration"),
    ],
    ids=["latin-1-cookie", "invalid-utf-8"],
)
def test_non_utf8_source_refused(isolated_env: Path, plain_folder: Path, data: bytes, message: str) -> None:
    (plain_folder / "helpers.py").write_bytes(data)
    with pytest.raises(UnsafeRepositoryError, match=message) as error:
        fetch(str(plain_folder))
    assert error.value.rule_id == "HG108"
    assert error.value.path == "helpers.py"


def test_utf8_bom_source_accepted(isolated_env: Path, plain_folder: Path) -> None:
    (plain_folder / "helpers.py").write_bytes(b"\xef\xbb\xbfHELPER_VERSION = 'caf\xc3\xa9'\n")
    assert fetch(str(plain_folder)).read_text("helpers.py") == "HELPER_VERSION = 'café'\n"


def test_lock_verifies_folder_and_names_changed_file(isolated_env: Path, plain_folder: Path, tmp_path: Path) -> None:
    path = lock(str(plain_folder)).write(tmp_path / "hubguard.lock")
    assert fetch(str(plain_folder), lock=path).revision.commit == LockFile.read(path).main.commit
    before = sha256_hex((plain_folder / "helpers.py").read_bytes())
    (plain_folder / "helpers.py").write_text('HELPER_VERSION = "tampered"\n')
    after = sha256_hex((plain_folder / "helpers.py").read_bytes())
    with pytest.raises(IntegrityError, match=f"sha256 is {after} but the lock file expects {before}") as error:
        fetch(str(plain_folder), lock=path)
    assert error.value.path == "helpers.py"


def test_require_lock_refuses_without_lock(isolated_env: Path, plain_folder: Path) -> None:
    with pytest.raises(UnpinnedRevisionError, match="a lock file is required to fetch"):
        fetch(str(plain_folder), require_lock=True)


def test_lock_for_other_source_refused(isolated_env: Path, plain_folder: Path, tmp_path: Path) -> None:
    other = write_folder(tmp_path / "other", tiny_model_files("two", 2))
    path = lock(str(other)).write(tmp_path / "other.lock")
    with pytest.raises(IntegrityError, match=f"the lock file pins {other}, not {plain_folder}"):
        fetch(str(plain_folder), lock=path)


def test_relative_imports_closure_matches_ast(isolated_env: Path, tmp_path: Path) -> None:
    """Docstring and comment imports are ignored; utils/ is a sub-package reached through ..helpers."""
    folder = write_folder(tmp_path / "split", SPLIT_MODEL)
    snapshot = fetch(str(folder))
    assert snapshot.code_paths == (
        "configuration_split.py",
        "helpers.py",
        "layers.py",
        "modeling_split.py",
        "utils/__init__.py",
        "utils/posenc.py",
    )
    assert not snapshot.has("modeling_escape.py")


def test_relative_import_escape_refused_with_line(isolated_env: Path, tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "split", SPLIT_MODEL)
    (folder / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_escape.EscapeModel"}}))
    with pytest.raises(UnsafeRepositoryError, match="leaves the repository root") as error:
        fetch(str(folder))
    assert error.value.location() == "modeling_escape.py:3"
    assert error.value.rule_id == "HG107"


def test_repo_ids_with_dots_are_distinct_folders(isolated_env: Path, tmp_path: Path) -> None:
    snapshots = {}
    for name, magic in (("tiny-resnet-v1.5", 15), ("tiny-resnet-v1_5", 99)):
        files = tiny_model_files("one", 1)
        files["helpers.py"] = f"MAGIC = {magic}\n"
        snapshots[name] = fetch(str(write_folder(tmp_path / "acme" / name, files)))
    dotted, underscored = snapshots["tiny-resnet-v1.5"], snapshots["tiny-resnet-v1_5"]
    assert dotted.read_text("helpers.py") == "MAGIC = 15\n"
    assert underscored.read_text("helpers.py") == "MAGIC = 99\n"
    assert dotted.code_id() != underscored.code_id()
    assert dotted.source.location == str(tmp_path / "acme" / "tiny-resnet-v1.5")


def test_failed_fetch_leaves_no_partial_files(isolated_env: Path, plain_folder: Path) -> None:
    (plain_folder / "helpers.py").write_bytes(INVALID_UTF8_SOURCE)
    with pytest.raises(UnsafeRepositoryError):
        fetch(str(plain_folder))
    tmp = isolated_env / "tmp"
    assert not tmp.exists() or os.listdir(tmp) == []


def test_missing_folder_raises_and_caches_nothing(isolated_env: Path, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError, match=f"folder {tmp_path}/nowhere does not exist"):
        fetch(str(tmp_path / "nowhere"))
    assert cache_entries(isolated_env) == []


def test_repo_id_shadowed_by_folder_is_ambiguous(isolated_env: Path, plain_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(plain_folder.parent.parent)
    with pytest.raises(FetchError, match="'acme/tiny' is both a Hub repo id and a folder in the current directory"):
        fetch("acme/tiny")
    assert fetch("./acme/tiny").source.location == str(plain_folder)


def test_unsupported_scheme_refused(isolated_env: Path) -> None:
    with pytest.raises(FetchError, match="source 'git\\+ssh://example.invalid/x' uses an unsupported scheme"):
        fetch("git+ssh://example.invalid/x", revision="a" * 40)


def test_large_optional_json_is_left_out(isolated_env: Path, plain_folder: Path) -> None:
    (plain_folder / "tokenizer.json").write_text(json.dumps({"vocab": "x" * 2000}))
    snapshot = fetch(str(plain_folder), limits=FetchLimits(max_file_size=1000))
    assert not snapshot.has("tokenizer.json")
    assert snapshot.has("config.json")
    (plain_folder / "config.json").write_text(json.dumps({"padding": "x" * 2000}))
    with pytest.raises(UnsafeRepositoryError, match="more than the limit of 1000 bytes") as error:
        fetch(str(plain_folder), limits=FetchLimits(max_file_size=1000))
    assert error.value.path == "config.json"
