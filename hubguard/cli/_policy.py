"""``hubguard policy``: check a policy file, print a shipped policy, or print the JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hubguard.cli._errors import EXIT_OK


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "policy",
        help="check, show or describe policy files",
        description="Work with policy files. Exit codes: 0 valid, 2 invalid policy file or usage error.",
    )
    actions = parser.add_subparsers(dest="policy_action", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate a policy file and print its name and sha256")
    check.add_argument("file", help="policy TOML file (or default, strict)")
    show = actions.add_parser("show", help="print a shipped policy's TOML text")
    show.add_argument("name", choices=("default", "strict"))
    actions.add_parser("schema", help="print the JSON Schema of policy files")
    return parser


def run(args: argparse.Namespace) -> int:
    from hubguard.audit.policy import builtin_policy_text, load_policy, policy_json_schema

    if args.policy_action == "check":
        policy = load_policy(args.file)
        print(f"OK: {args.file}: policy {policy.name!r}, sha256 {policy.sha256}", file=sys.stderr)
        return EXIT_OK
    if args.policy_action == "show":
        sys.stdout.write(builtin_policy_text(args.name))
        return EXIT_OK
    sys.stdout.write(json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n")
    return EXIT_OK
