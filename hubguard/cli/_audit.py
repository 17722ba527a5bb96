"""``hubguard audit``: fetch a source at a pinned revision, audit it, and print the report.

Exit codes: 0 allowed, 1 denied by the policy, 2 usage error, policy-file error or
unwritable ``--output``, 3 fetch or integrity failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hubguard._output import write_text_atomic
from hubguard.cli._errors import EXIT_DENIED, EXIT_OK

logger = logging.getLogger(__name__)

FORMAT_CHOICES = ("text", "json", "sarif", "markdown")
SEVERITY_CHOICES = ("info", "low", "medium", "high", "critical")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options ``audit`` and ``scan`` share: policy, format, output file, fail-on threshold."""
    parser.add_argument("--policy", help="policy name (default, strict) or TOML file; default: default")
    parser.add_argument("--format", choices=FORMAT_CHOICES, default="text", help="report format (default: text)")
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        help="write the report to this file instead of standard output, creating its folder "
        "(exit code 2 when it cannot be written)",
    )
    parser.add_argument(
        "--unsafe-skip-bandit",
        action="store_true",
        help="skip bandit (hubguard's own rules still run); the report is marked unsafe",
    )
    parser.add_argument(
        "--fail-on",
        choices=SEVERITY_CHOICES,
        help="also deny when a finding has this severity or higher (default: the policy's audit.fail_on)",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "audit",
        help="audit a model's remote code and weights without running them",
        description=(
            "Fetch SOURCE at a pinned revision, scan its code closure with hubguard's rules and "
            "bandit, check its weight files, and print the report. Exit codes: 0 allowed, "
            "1 denied by the policy, 2 usage error, policy-file error or unwritable --output, "
            "3 fetch or integrity failure."
        ),
    )
    parser.add_argument("source", help="Hub repo id (org/name), local folder, git+https:// / git+file:// URL, or a .py file")
    parser.add_argument("--revision", help="full 40-character commit id to audit")
    parser.add_argument("--lock", help="lock file that pins every byte (see hubguard lock)")
    parser.add_argument(
        "--code-revision", help="full commit id of the code repository that auto_map references as org/name--module.Class"
    )
    parser.add_argument(
        "--trial",
        action="store_true",
        help="also rehearse loading the model in a jailed child process and report what the code attempted",
    )
    add_report_arguments(parser)
    return parser


def emit_report(report: Any, args: argparse.Namespace) -> int:
    """Apply ``--fail-on``, write the report to ``--output`` (or standard output), and return the exit code."""
    from hubguard.audit import render
    from hubguard.audit.findings import Severity

    if args.fail_on:
        report = report.with_fail_on(Severity.parse(args.fail_on))
    text = render(report, args.format)
    if args.output is not None:
        write_text_atomic(args.output, text, description=f"the {args.format} report")
        logger.info("wrote the %s report to %s", args.format, args.output)
    else:
        sys.stdout.write(text)
    blocking = report.blocking_findings()
    status = "FAIL" if report.verdict == "deny" else "OK"
    trial = f"; trial {report.trial['verdict']}" if report.trial else ""
    print(
        f"{status}: {report.source_summary}: {report.verdict} ({len(blocking)} blocking of {len(report.findings)} findings{trial})",
        file=sys.stderr,
    )
    return EXIT_DENIED if report.verdict == "deny" else EXIT_OK


def run(args: argparse.Namespace) -> int:
    from hubguard.audit import audit
    from hubguard.audit.policy import load_policy
    from hubguard.cli._progress import stage

    policy = load_policy(args.policy)
    with stage(f"auditing {args.source}" + (" with a jailed trial" if args.trial else "")):
        report = audit(
            args.source,
            revision=args.revision,
            policy=policy,
            lock=args.lock,
            code_revision=args.code_revision,
            trial=args.trial,
            unsafe_skip_bandit=args.unsafe_skip_bandit,
        )
    return emit_report(report, args)
