"""``hubguard demo``: run the main job on the bundled example, offline."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hubguard.cli._errors import EXIT_DENIED, EXIT_OK


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="build, pin, audit and load the bundled example, then show a tampered and a hostile copy refused",
        description=(
            "Build a local git repository from examples/custom_resnet/ with random weights, pin its "
            "commit, audit it, load it through the sandbox and run a forward pass; then show a "
            "tampered file refused by the lock and a hostile variant refused by the policy. "
            "Needs no network. Exit code 0 when every step behaved as expected, else 1."
        ),
    )
    parser.add_argument("--small", action="store_true", help="use a tiny basic-block ResNet instead of resnet50d")
    parser.add_argument("--work-dir", type=Path, help="keep the demo's repositories in this folder (default: a temp folder, removed)")
    parser.add_argument("--example", type=Path, help="example folder to use (default: the bundled examples/custom_resnet)")
    return parser


def run(args: argparse.Namespace) -> int:
    from hubguard.demo import EXAMPLE_DIR, run_demo

    results = run_demo(args.work_dir, small=args.small, example_dir=args.example or EXAMPLE_DIR)
    return EXIT_OK if results and all(result.expected for result in results) else EXIT_DENIED
