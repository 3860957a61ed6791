"""The `anisora` command: each package's command module adds its commands; this one assembles them and runs
one. Exit status 0 on success, 2 on a usage error (bad arguments, config values or input files: one line,
before any model loads), 1 on a failure while working (one line; -v shows the traceback)."""

from __future__ import annotations

import argparse
import sys
import traceback

from . import __version__
from .curate.cli import add_curate_parser
from .errors import AnisoraError, InputError
from .evaluate.cli import add_evaluate_parser
from .logs import configure
from .media.cli import add_probe_parser
from .model.cli import add_generate_parser
from .model.convert.cli import add_convert_parser
from .studio.cli import add_studio_parsers
from .toonworld.cli import add_toonworld_parser
from .train.cli import add_train_parser

USAGE_ERROR, FAILURE, INTERRUPTED = 2, 1, 130


class CommandParser(argparse.ArgumentParser):
    """Every parser of the command (subcommands get this class too): -q/-v before or after any subcommand,
    and a usage error as one line."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        volume = self.add_mutually_exclusive_group()
        # SUPPRESS: a subcommand's parser leaves alone what an earlier -q/-v set
        volume.add_argument(
            "-q",
            "--quiet",
            action="store_true",
            default=argparse.SUPPRESS,
            help="warnings and errors only, no progress bars",
        )
        volume.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=argparse.SUPPRESS,
            help="debug lines and library loading bars; -vv: every library's debug lines",
        )

    def error(self, message: str):
        raise InputError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="anisora", description="AniSora-open: anime video data, models and tools.")
    parser.add_argument("--version", action="version", version=f"anisora {__version__}")
    parser.set_defaults(quiet=False, verbose=0, log_timestamps=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_toonworld_parser(sub)
    add_curate_parser(sub)
    add_generate_parser(sub)
    add_convert_parser(sub)
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_studio_parsers(sub)
    add_probe_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except AnisoraError as exc:
        print(f"anisora: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    configure(-1 if args.quiet else args.verbose, timestamps=args.log_timestamps)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not through them
            return args.func(args)
    except AnisoraError as exc:
        print(f"anisora: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("anisora: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # a failure while working, not a mistake in the input
        if args.verbose:
            traceback.print_exc()
        first_line = next(iter(str(exc).strip().splitlines()), "")
        hint = "" if args.verbose else " (-v shows the traceback)"
        print(f"anisora: error: {type(exc).__name__}: {first_line}{hint}", file=sys.stderr)
        return FAILURE


if __name__ == "__main__":
    sys.exit(main())
