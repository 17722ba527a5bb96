"""``hubguard policy``: check a policy file, print a shipped policy, or print the JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hubguard.cli._errors import EXIT_OK, EXIT_USAGE
from hubguard.errors import PolicyFileError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "policy",
        help="check, show or describe policy files",
        description="Work with policy files. Exit codes: 0 valid, 2 invalid policy file or usage error.",
    )
    actions = parser.add_subparsers(dest="policy_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate policy files and print one OK or FAIL line per file",
        description="Validate each FILE and print one OK line (name, sha256) or FAIL line (the error) "
        "per file on standard error. Exit codes: 0 every file is valid, 2 any file is invalid.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="policy TOML file (or default, strict)")
    show = actions.add_parser("show", help="print a shipped policy's TOML text")
    show.add_argument("name", choices=("default", "strict"))
    actions.add_parser("schema", help="print the JSON Schema of policy files")
    return parser


def run(args: argparse.Namespace) -> int:
    from hubguard.audit.policy import builtin_policy_text, load_policy, policy_json_schema

    if args.policy_action == "check":
        return _check(args.files)
    if args.policy_action == "show":
        sys.stdout.write(builtin_policy_text(args.name))
        return EXIT_OK
    sys.stdout.write(json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n")
    return EXIT_OK


def _check(files: list[str]) -> int:
    """Validate every file, even after a failure, so one run lists every invalid file."""
    from hubguard.audit.policy import load_policy

    failed = 0
    for file in files:
        try:
            policy = load_policy(file)
        except PolicyFileError as error:
            failed += 1
            print(f"FAIL: {file}: {error.diagnostics()}", file=sys.stderr)
            continue
        print(f"OK: {file}: policy {policy.name!r}, sha256 {policy.sha256}", file=sys.stderr)
    return EXIT_USAGE if failed else EXIT_OK
