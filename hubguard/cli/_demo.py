"""``hubguard demo``: run the main job on the bundled example, offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hubguard.cli._errors import EXIT_DENIED, EXIT_OK, EXIT_USAGE, render_error
from hubguard.errors import HubguardError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="build, pin, audit and load the bundled example, then show a tampered and a hostile copy refused",
        description=(
            "Build a local git repository from examples/custom_resnet/ with random weights, pin its "
            "commit, audit it, load it through the sandbox and run a forward pass; then show a "
            "tampered file refused by the lock and a hostile variant refused by the policy. "
            "Needs no network. Exit codes: 0 every step behaved as expected, 1 a step did not, "
            "2 unusable --work-dir or --example."
        ),
    )
    parser.add_argument("--small", action="store_true", help="use a tiny basic-block ResNet instead of resnet50d")
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep the demo's repositories in this folder, which must not exist yet or be empty "
        "(default: a temporary folder, removed)",
    )
    parser.add_argument(
        "--example",
        type=Path,
        help="example folder holding __init__.py, configuration_resnet.py and modeling_resnet.py "
        "(default: the bundled examples/custom_resnet). Its code is imported directly as trusted "
        "author code, not sandboxed: the demo plays the author who saves the model",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from hubguard.demo import EXAMPLE_DIR, check_example_dir, prepare_work_dir, run_demo

    example = args.example or EXAMPLE_DIR
    try:
        check_example_dir(example)
        if args.work_dir is not None:
            prepare_work_dir(args.work_dir)
    except HubguardError as error:
        print(render_error(error), file=sys.stderr)
        return EXIT_USAGE
    results = run_demo(args.work_dir, small=args.small, example_dir=example)
    return EXIT_OK if results and all(result.expected for result in results) else EXIT_DENIED
