"""``hubguard scan``: audit local model folders or single ``.py`` files (for CI and pre-commit).

Every ``.py`` file of a folder is scanned, not only the ``auto_map`` closure, because code
under development may not be wired up yet.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hubguard.cli._audit import add_report_arguments, emit_report
from hubguard.cli._errors import EXIT_USAGE

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "scan",
        help="audit local model folders or .py files",
        description=(
            "Scan each PATH (a model folder or a .py file; anything else is a usage error) with the policy "
            "and print one report. "
            "Folders given together are audited as separate snapshots in one report. Exit codes: "
            "0 allowed, 1 denied, 2 usage error, policy-file error or unwritable --output, "
            "3 unreadable or unsafe path."
        ),
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="model folder or .py file")
    add_report_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from hubguard.audit import audit_snapshots, snapshot_of_paths
    from hubguard.audit.policy import load_policy
    from hubguard.errors import RepositoryNotFoundError

    for path in args.paths:
        if not path.exists():
            raise RepositoryNotFoundError(f"path {path} does not exist", path=str(path), hint="pass a model folder or a .py file")
        if not path.is_dir() and not (path.is_file() and path.suffix == ".py"):
            print(
                f"hubguard: error: {path} is neither a .py file nor a folder\n  fix: pass a model folder or a .py file",
                file=sys.stderr,
            )
            return EXIT_USAGE
    policy = load_policy(args.policy)
    folders = [path for path in args.paths if path.is_dir()]
    files = [path for path in args.paths if path.is_file()]
    from hubguard.cli._progress import stage

    with stage(f"scanning {len(folders) + len(files)} path(s)"):
        snapshots = snapshot_of_paths(folders) + snapshot_of_paths(files)
        report = audit_snapshots(snapshots, policy, unsafe_skip_bandit=args.unsafe_skip_bandit)
    return emit_report(report, args)
