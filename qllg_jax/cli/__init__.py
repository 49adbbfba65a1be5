"""The ``qllg`` command line. Each subcommand lives in its own module exposing ``add_parser`` and ``run``.

Manners shared by every subcommand (:func:`main`): a user error (bad config, bad argument, an output that may not be
written) is one line on stderr, ``qllg <command>: error: ...``, and exit status 2; Ctrl-C stops with one line
and exit status 130; status lines go to stdout, progress bars to stderr. JAX's persistent compilation cache is on
(``QLLG_COMPILATION_CACHE=off`` disables it), so a program is compiled once per machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

SUBCOMMANDS = ("reproduce", "run", "sweep", "config")

DESCRIPTION = """\
q-LLG spin dynamics (Liu et al. 2024) with JAX.

Units: energies in E0 and times in hbar/E0 (hbar = 1). The paper's figures use E0 = mu_B * 1 T
(a 1 T field on a g = 2 spin-1/2 is one unit; one time unit is about 11.37 ps). Config files may give
energies in meV, fields in tesla and times in ps instead: `qllg config reference` lists every key.

Exit status: 0 success, 2 user error (one line on stderr), 3 some runs or sweep points failed, 130 interrupted.
Compiled programs are cached in ~/.cache/qllg-jax/jax ($XDG_CACHE_HOME respected; QLLG_COMPILATION_CACHE=off
or =DIR to disable or move it).
"""

EXIT_USER_ERROR = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130


class UserError(ValueError):
    """A bad command-line argument or output location (reported in one line, exit status 2)."""


def status(message: str) -> None:
    """One status line on stdout, shown at once."""
    print(message, flush=True)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``qllg run: error: ... (see qllg run --help)``), exit status 2."""

    def error(self, message):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="qllg", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run ``qllg ARGS``; returns the exit status (argparse usage errors exit 2 by themselves).

    As the program (``argv`` None: the ``qllg`` script, ``python -m qllg_jax.cli``) an interrupted run ends the
    process at once with status 130, without the interpreter's teardown: XLA may still be running a chunk in its
    own threads, and tearing Python down under it can crash the process (what a SIGKILL leaves is consistent:
    the sweep file commits chunk by chunk).
    """
    as_program = argv is None
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "compiles", True):
            from .._compilation_cache import enable_compilation_cache

            enable_compilation_cache()
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the goodbye
        note = getattr(args, "interrupt_note", None)
        print(f"qllg {args.command}: interrupted" + (f"; {note}" if note else ""), file=sys.stderr, flush=True)
        if as_program:
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except ValueError as error:  # ConfigError, SizeError, UserError and the library's argument checks
        print(f"qllg {args.command}: error: {_one_line(error)}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
