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
import threading
import time

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


class _Interrupts:
    """How a Ctrl-C (SIGINT) ends a command: one line on stderr and exit status 130 while its work is under way;
    once the work is done it is ignored (the exit status stays the command's own, also during the teardown).

    As the program the signal does not raise ``KeyboardInterrupt`` (which lands wherever the main thread happens to
    be: inside an import, or in a garbage-collector callback that swallows it): a handler prints the line and ends
    the process at once. Python runs that handler only between bytecodes of the main thread, not while XLA
    compiles or runs a chunk, so a watchdog thread hears the signal too (``signal.set_wakeup_fd``) and ends the
    process if the main thread has not done so within ``GRACE_S``. Ending mid-write is safe: a sweep file commits
    chunk by chunk and survives even SIGKILL.
    """

    GRACE_S = 0.3

    def __init__(self):
        self.lock = threading.Lock()
        self.finished = False
        self.args = None

    def interrupted(self) -> int:
        """Print the one line (once, whichever path comes first) and return 130."""
        if not self.lock.acquire(blocking=False):  # the other path is printing and ending the process
            threading.Event().wait()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the goodbye
        command = f"qllg {self.args.command}" if self.args is not None else "qllg"
        note = getattr(self.args, "interrupt_note", None)  # read now: a handler may refine it while it runs
        tqdm = sys.modules.get("tqdm")
        bar = bool(getattr(getattr(tqdm, "tqdm", None), "_instances", None))  # a progress bar is mid-line on stderr
        print(("\n" if bar else "") + f"{command}: interrupted" + (f"; {note}" if note else ""), file=sys.stderr,
              flush=True)
        sys.stdout.flush()
        return EXIT_INTERRUPTED

    def _end(self, *_):
        if not self.finished:
            self.interrupted()
            os._exit(EXIT_INTERRUPTED)

    def install(self) -> None:
        """As the program: the handler and the watchdog (see the class docstring)."""
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.signal(signal.SIGINT, self._end)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

        def watchdog():
            while True:
                if signal.SIGINT in os.read(read_end, 64) and not self.finished:
                    time.sleep(self.GRACE_S)  # in Python code the main thread's handler gets there first
                    self._end()

        threading.Thread(target=watchdog, name="qllg-interrupt-watchdog", daemon=True).start()

    def finish(self) -> None:
        """The work is done: from now on SIGINT is ignored."""
        self.finished = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    """Run ``qllg ARGS``; returns the exit status (argparse usage errors exit 2 by themselves).

    As the program (``argv`` None: the ``qllg`` script, ``python -m qllg_jax.cli``) an interrupted run ends the
    process at once with status 130, without the interpreter's teardown: XLA may still be running a chunk in its
    own threads, and tearing Python down under it can crash the process (what a SIGKILL leaves is consistent:
    the sweep file commits chunk by chunk). A Ctrl-C after the command's work is done is ignored.
    """
    as_program = argv is None
    interrupts = _Interrupts()
    if as_program:
        interrupts.install()
    try:
        args = interrupts.args = build_parser().parse_args(argv)
        if getattr(args, "compiles", True):
            from .._compilation_cache import enable_compilation_cache

            enable_compilation_cache()
        code = int(args.handler(args) or 0)
    except KeyboardInterrupt:  # called as a function (as the program, SIGINT raises nothing)
        return interrupts.interrupted()
    except ValueError as error:  # ConfigError, SizeError, UserError and the library's argument checks
        print(f"qllg {args.command}: error: {_one_line(error)}", file=sys.stderr, flush=True)
        code = EXIT_USER_ERROR
    if as_program:
        interrupts.finish()
    return code


if __name__ == "__main__":
    sys.exit(main())
