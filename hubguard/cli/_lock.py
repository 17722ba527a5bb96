"""``hubguard lock``: fetch a source at a pinned revision and write every file's sha256 to a lock file."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from hubguard.cli._errors import EXIT_OK

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "lock",
        help="write a lock file that pins every byte of a source",
        description=(
            "Fetch SOURCE at --revision, verify it, and write a JSON lock file with the source, the "
            "commit (or a plain folder's sha256 content id) and the path, size and sha256 of every file "
            "hubguard loads, plus one entry per code repository that auto_map references. Pass the lock "
            "to audit and load with --lock. Exit codes: 0 written, 2 usage error or unwritable --output, "
            "3 fetch or integrity failure."
        ),
    )
    parser.add_argument("source", help="Hub repo id (org/name), local folder, or git+https:// / git+file:// URL")
    parser.add_argument("--revision", help="full 40-character commit id to lock (local folders need none)")
    parser.add_argument(
        "--code-revision",
        help="full commit id of the code repository that auto_map references as org/name--module.Class",
    )
    parser.add_argument(
        "--allow-floating",
        action="store_true",
        help="accept a branch, tag or short id and lock the commit it resolves to now",
    )
    parser.add_argument(
        "--output",
        "-o",
        default="hubguard.lock",
        help="lock file to write, creating its folder (default: hubguard.lock; exit code 2 when it cannot be written)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from hubguard.loader import lock

    lock_file = lock(
        args.source,
        revision=args.revision,
        code_revision=args.code_revision,
        allow_floating=args.allow_floating,
    )
    path = lock_file.write(args.output)
    for entry in lock_file.entries:
        print(f"locked {entry.source}@{entry.commit}: {len(entry.files)} files", file=sys.stderr)
    print(str(path))
    logger.info("wrote %s", path)
    return EXIT_OK
