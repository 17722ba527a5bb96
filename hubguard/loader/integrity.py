"""Check received bytes against what the pinned commit or a lock file says they must be.

Three kinds of proof are used, strongest available first:

* a lock file (``hubguard.lock``) lists the sha256 and size of every file at one commit;
* a git blob id (``sha1("blob <size>\\0" + bytes)``) from the commit's tree, for git
  sources and for Hub files whose metadata carries it;
* the LFS sha256 of large Hub files, which is the sha256 of the file's bytes.

Lock file format (JSON, UTF-8, written sorted)::

    {
      "hubguard_lock": 1,
      "repositories": [
        {"source": "acme/tiny", "kind": "hub", "commit": "<40 hex or sha256:…>",
         "files": [{"path": "config.json", "size": 312, "sha256": "<64 hex>"}, …]},
        …
      ]
    }

The first repository is the one the lock was made for; later ones pin the repositories
that its ``auto_map`` points into (``org/other--module.Class``).
"""

from __future__ import annotations

import hashlib
import os
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubguard._output import write_text_atomic
from hubguard.errors import IntegrityError

LOCK_FORMAT_VERSION = 1
_CHUNK = 1 << 20


def git_blob_id(data: bytes) -> str:
    """Return the git (SHA-1) blob id of ``data``, as ``git hash-object`` prints it."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def check_git_blob(path: str, data: bytes, expected: str, *, source: str) -> None:
    """Check that ``data`` is the blob ``expected`` of the pinned tree.

    Raises:
        IntegrityError: the bytes hash to another blob id.
    """
    actual = git_blob_id(data)
    if actual != expected.lower():
        raise IntegrityError(
            f"git blob id of the received bytes is {actual}, but the pinned commit of {source} lists {expected}",
            rule_id="HG103",
            path=path,
            hint="the source served other bytes than the pinned commit holds; do not use this source",
        )


def check_sha256(path: str, actual: str, expected: str, *, what: str) -> None:
    """Check one sha256 against the value ``what`` (``"the lock file"``, ``"the LFS pointer"``) expects.

    Raises:
        IntegrityError: the hashes differ; the message names the file and both hashes.
    """
    if actual != expected.lower():
        raise IntegrityError(
            f"sha256 is {actual} but {what} expects {expected}",
            rule_id="HG103",
            path=path,
            hint="the bytes changed since they were pinned; re-check the source before updating the lock",
        )


@dataclass(frozen=True)
class LockedFile:
    """One file of a lock entry: repository path, size in bytes and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class LockEntry:
    """The files of one repository at one commit, as recorded in a lock file."""

    source: str
    kind: str
    commit: str
    files: tuple[LockedFile, ...]

    def file_map(self) -> dict[str, LockedFile]:
        """Return the locked files by repository path."""
        return {locked.path: locked for locked in self.files}


@dataclass(frozen=True)
class LockFile:
    """A parsed ``hubguard.lock``: the main repository first, then the code repositories it references."""

    entries: tuple[LockEntry, ...]

    @property
    def main(self) -> LockEntry:
        """The entry of the repository the lock was made for."""
        return self.entries[0]

    def entry_for(self, source: str) -> LockEntry | None:
        """Return the entry whose source is ``source``, or ``None``."""
        for entry in self.entries:
            if entry.source == source:
                return entry
        return None

    def to_json(self) -> str:
        """Return the lock as JSON text, keys and files sorted, ending in a newline."""
        document = {
            "hubguard_lock": LOCK_FORMAT_VERSION,
            "repositories": [
                {
                    "source": entry.source,
                    "kind": entry.kind,
                    "commit": entry.commit,
                    "files": [
                        {"path": f.path, "size": f.size, "sha256": f.sha256}
                        for f in sorted(entry.files, key=lambda f: f.path)
                    ],
                }
                for entry in self.entries
            ],
        }
        return json.dumps(document, indent=2, sort_keys=True) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the lock to ``path`` atomically, creating its folder, and return the path.

        Raises:
            OutputFileError: the folder cannot be created or the file cannot be written.
        """
        return write_text_atomic(path, self.to_json(), description="the lock file")

    @classmethod
    def read(cls, path: str | Path) -> LockFile:
        """Read and validate a lock file.

        Raises:
            IntegrityError: the file is missing, not JSON, or breaks the format above.
        """
        location = str(path)
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise IntegrityError(
                f"lock file {location} does not exist", rule_id="HG113", hint="create it with `hubguard lock SOURCE`"
            ) from error
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise IntegrityError(
                f"lock file {location} is not readable JSON: {error}",
                rule_id="HG113",
                path=location,
                hint="recreate it with `hubguard lock SOURCE`",
            ) from error
        return cls.from_document(document, location=location)

    @classmethod
    def from_document(cls, document: Any, *, location: str) -> LockFile:
        """Build a lock from parsed JSON, checking every field's type.

        Raises:
            IntegrityError: a field is missing or has the wrong type.
        """

        def invalid(detail: str) -> IntegrityError:
            return IntegrityError(
                f"lock file {location} is invalid: {detail}",
                rule_id="HG113",
                path=location,
                hint="recreate it with `hubguard lock SOURCE`",
            )

        if not isinstance(document, dict) or document.get("hubguard_lock") != LOCK_FORMAT_VERSION:
            raise invalid(f'"hubguard_lock" must be {LOCK_FORMAT_VERSION}')
        repositories = document.get("repositories")
        if not isinstance(repositories, list) or not repositories:
            raise invalid('"repositories" must be a non-empty list')
        entries = []
        for index, repository in enumerate(repositories):
            if not isinstance(repository, dict):
                raise invalid(f"repositories[{index}] must be an object")
            fields = {name: repository.get(name) for name in ("source", "kind", "commit")}
            for name, value in fields.items():
                if not isinstance(value, str) or not value:
                    raise invalid(f"repositories[{index}].{name} must be a non-empty string")
            files = repository.get("files")
            if not isinstance(files, list):
                raise invalid(f"repositories[{index}].files must be a list")
            locked = []
            for number, item in enumerate(files):
                where = f"repositories[{index}].files[{number}]"
                if not isinstance(item, dict):
                    raise invalid(f"{where} must be an object")
                path, size, sha256 = item.get("path"), item.get("size"), item.get("sha256")
                if not isinstance(path, str) or not isinstance(size, int) or isinstance(size, bool):
                    raise invalid(f"{where} needs a string path and an integer size")
                if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
                    raise invalid(f"{where}.sha256 must be 64 lowercase hex digits")
                locked.append(LockedFile(path=path, size=size, sha256=sha256))
            entries.append(
                LockEntry(
                    source=fields["source"],  # type: ignore[arg-type]  # checked to be str above
                    kind=fields["kind"],  # type: ignore[arg-type]  # checked to be str above
                    commit=fields["commit"],  # type: ignore[arg-type]  # checked to be str above
                    files=tuple(locked),
                )
            )
        return cls(entries=tuple(entries))


def lock_entry_from_files(
    *, source: str, kind: str, commit: str, files: Iterable[tuple[str, int, str]]
) -> LockEntry:
    """Build a lock entry from ``(path, size, sha256)`` triples."""
    locked = tuple(sorted((LockedFile(path=p, size=s, sha256=h) for p, s, h in files), key=lambda f: f.path))
    return LockEntry(source=source, kind=kind, commit=commit, files=locked)


def check_against_lock(entry: LockEntry, received: Mapping[str, tuple[int, str]], *, complete: bool) -> None:
    """Check received files (path -> (size, sha256)) against a lock entry.

    Args:
        complete: every file of the lock entry must have been received as well.

    Raises:
        IntegrityError: a file is missing from the lock, or its hash or size differs.
    """
    locked = entry.file_map()
    for path, (size, sha256) in sorted(received.items()):
        expected = locked.get(path)
        if expected is None:
            raise IntegrityError(
                f"{path} is not listed in the lock file for {entry.source}@{entry.commit}",
                rule_id="HG103",
                path=path,
                hint="the repository gained a file since the lock was made; review it and recreate the lock",
            )
        check_sha256(path, sha256, expected.sha256, what="the lock file")
        if size != expected.size:
            raise IntegrityError(
                f"size is {size} bytes but the lock file expects {expected.size}",
                rule_id="HG103",
                path=path,
                hint="the bytes changed since they were pinned; re-check the source before updating the lock",
            )
    if complete:
        missing = sorted(set(locked) - set(received))
        if missing:
            raise IntegrityError(
                f"files listed in the lock file were not received from {entry.source}: {', '.join(missing)}",
                rule_id="HG103",
                path=missing[0],
                hint="the source no longer serves the locked files at this commit",
            )


def git_blob_id_of_file(path: Path) -> str:
    """Return the git (SHA-1) blob id of a file's bytes, read in 1 MiB chunks."""
    size = os.path.getsize(path)
    digest = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    read = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            read += len(chunk)
    if read != size:
        raise IntegrityError(
            f"changed size while it was read ({size} then {read} bytes)",
            rule_id="HG103",
            path=str(path),
            hint="load the folder again once nothing writes to it",
        )
    return digest.hexdigest()


def sha256_file(path: Path) -> tuple[int, str]:
    """Return the size and sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


__all__ = [
    "git_blob_id_of_file",
    "LOCK_FORMAT_VERSION",
    "LockEntry",
    "LockFile",
    "LockedFile",
    "check_against_lock",
    "check_git_blob",
    "check_sha256",
    "git_blob_id",
    "lock_entry_from_files",
    "sha256_file",
]
