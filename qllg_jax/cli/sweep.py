"""``qllg sweep CONFIG.toml``: a parameter sweep described by a ``qllg run`` config plus a ``[sweep]`` table."""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import EXIT_FAILED, UserError, status

HELP = """\
Run a parameter sweep described by a `qllg run` config plus a [sweep] table, into a resumable HDF5 file.

    [sweep]
    mode = "grid"            # "grid" (Cartesian product, first key slowest) or "zip" (equal lengths)
    chunk_size = 64          # optional (default: from memory_budget_mb)
    memory_budget_mb = 1024  # optional

    [sweep.parameters]       # dotted keys into the config; a trailing integer indexes a list
    "system.dimer.J" = [0.5, 1.0, 1.5]
    "system.dimer.D.2" = { linspace = [0.0, 0.6, 4] }   # D_z; also { logspace = [a, b, n] }, { values = [...] }
    "dynamics.kappa" = [0.1, 0.5]

Sweepable: system couplings (field, exchange, dmi, anisotropy, the dimer's B, J, D), [initial_state]
parameters (e.g. a Werner p, a thermal beta) and dynamics.kappa; everything else is shared by all points.
Units as in the config (`qllg config reference`). The output (default: CONFIG.h5) holds /params/<dotted key>,
/outputs/observables/<name> (P, T, ...) and the energy Tr(rho H) as /outputs/invariants/energy (P, T), in E0.
Rerunning the same command resumes an interrupted sweep. Exit status: 0 all points succeeded, 3 some failed
(listed on stderr), 2 bad config or output file, 130 interrupted (rerun to resume).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep", help="run a parameter sweep from a TOML config into a resumable HDF5 file", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="TOML config: a `qllg run` config with a [sweep] table")
    parser.add_argument("--out", help="HDF5 output file (default: the config's name with .h5)")
    parser.add_argument("--quiet", action="store_true", help="no status lines or progress bar (batch jobs)")
    parser.add_argument("--chunk-size", type=int, help="points per compiled call (overrides [sweep] chunk_size)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file holding another sweep")
    parser.set_defaults(handler=run, interrupt_note="rerun the same command to resume")
    return parser


def _check_out(out: str) -> None:
    """The output file's directory must exist and be writable (checked before any compute)."""
    directory = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out):
        raise UserError(f"--out: {out!r} is a directory; give a file name such as {os.path.join(out, 'sweep.h5')!r}")
    if not os.path.isdir(directory):
        raise UserError(f"--out: the directory {directory!r} does not exist")
    if not os.access(directory, os.W_OK):
        raise UserError(f"--out: cannot write to the directory {directory!r} (permission denied)")


def run(args) -> int:
    from .. import sweep_solve
    from ..config import load_config
    from ..config.sweep import build_sweep
    from ..config.system import coupling_note

    say = (lambda message: None) if args.quiet else status
    out = args.out or os.path.splitext(args.config)[0] + ".h5"
    if args.chunk_size is not None and args.chunk_size < 1:
        raise UserError(f"--chunk-size: must be a positive integer, got {args.chunk_size}")
    _check_out(out)
    start = time.perf_counter()
    table = load_config(args.config)
    say(f"qllg sweep: building the sweep points of {args.config}")
    problem = build_sweep(table, status=lambda message: say(f"qllg sweep: {message}"))
    if coupling_note(table):
        say(f"qllg sweep: note: {coupling_note(table)}")
    options = dict(problem.options)
    if args.chunk_size is not None:
        options["chunk_size"] = args.chunk_size
    say(f"qllg sweep: {problem.n_points} points ready in {time.perf_counter() - start:.1f} s; compiling the first chunk "
        "(a first run compiles, later runs reuse the compilation cache)")
    args.interrupt_note = f"finished chunks are saved in {out}; rerun the same command to resume"
    result = sweep_solve(
        problem.H, problem.rho0, problem.ts, problem.kappa, problem.params,
        observables=problem.observables or None, solve_options=problem.solve_options,
        out=out, config=table, overwrite=args.overwrite, progress=not args.quiet, **options,
    )
    failed = result.failed()
    energy = " (energy: /outputs/invariants/energy)" if problem.energy else ""
    say(f"qllg sweep: {result.n_points} points, {len(failed)} failed, {time.perf_counter() - start:.1f} s -> {out}{energy}")
    for index, reason in list(failed.items())[:10]:
        print(f"  point {index} failed: {reason}", file=sys.stderr)
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more (SweepResult.failed() lists all)", file=sys.stderr)
    return 0 if not failed else EXIT_FAILED
