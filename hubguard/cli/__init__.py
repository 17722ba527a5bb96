"""The ``hubguard`` command: one module per subcommand, each with ``add_parser`` and ``run``.

Exit codes: 0 allowed, 1 denied by the policy, 2 usage error, policy-file error or
unwritable output file, 3 fetch or integrity failure. Only this package calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from hubguard._version import __version__
from hubguard.cli._errors import EXIT_USAGE, exit_code_for, render_error
from hubguard.errors import HubguardError

logger = logging.getLogger(__name__)

# Subcommand name -> module under hubguard.cli; each module defines
# ``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
SUBCOMMANDS = {
    "audit": "hubguard.cli._audit",
    "scan": "hubguard.cli._scan",
    "policy": "hubguard.cli._policy",
    "lock": "hubguard.cli._lock",
    "load": "hubguard.cli._load",
    "demo": "hubguard.cli._demo",
}


class _ArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors exit with hubguard's usage code (2)."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # quoted, typing import avoided
        self.print_usage(sys.stderr)
        print(f"hubguard: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _add_verbosity(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Add ``-q`` and ``-v``; they work before the subcommand (``hubguard -v audit``) and after it.

    Only the top-level parser sets defaults: argparse copies every attribute of a
    subparser's namespace over the top-level one, so a subparser default would erase
    the flags given before the subcommand.
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q", "--quiet", action="store_true", default=False if top_level else argparse.SUPPRESS, help="log errors only"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top_level else argparse.SUPPRESS,
        help="-v logs each step (INFO); -vv adds DEBUG details and tracebacks",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = _ArgumentParser(
        prog="hubguard",
        description="Pin, audit and sandbox remote-code models before they load.",
    )
    parser.add_argument("--version", action="version", version=f"hubguard {__version__}")
    _add_verbosity(parser, top_level=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    for module_name in SUBCOMMANDS.values():
        module = importlib.import_module(module_name)
        sub = module.add_parser(subparsers)
        _add_verbosity(sub, top_level=False)
        sub.set_defaults(_run=module.run)
    return parser


def configure_logging(quiet: bool, verbose: int) -> None:
    """Send logs to stderr: ``-q`` errors, default warnings, ``-v`` INFO, ``-vv`` DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("hubguard")
    package_logger.handlers[:] = [handler]
    package_logger.propagate = False
    if quiet:
        package_logger.setLevel(logging.ERROR)
    elif verbose >= 2:
        package_logger.setLevel(logging.DEBUG)
        logging.getLogger().setLevel(logging.DEBUG)
    elif verbose == 1:
        package_logger.setLevel(logging.INFO)
    else:
        package_logger.setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hubguard`` command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    configure_logging(args.quiet, args.verbose)
    try:
        return int(args._run(args))
    except HubguardError as error:
        print(render_error(error, traceback_shown=args.verbose >= 2), file=sys.stderr)
        if args.verbose >= 2:
            logger.exception("traceback of the error above")
        return exit_code_for(error)
    except KeyboardInterrupt:
        print("hubguard: interrupted", file=sys.stderr)
        return 130
