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
parameters (e.g. a Werner p, a thermal beta), dynamics.kappa and the numbers of a [[drive]]
("drive.0.frequency_GHz", "drive.0.amplitude_T", ...: a resonance curve is one sweep); everything else is
shared by all points.
Units as in the config (`qllg config reference`). The output (default: CONFIG.h5) holds /params/<dotted key>,
/outputs/observables/<name> (P, T, ...) and the energy Tr(rho H) as /outputs/invariants/energy (P, T), in E0.
Rerunning the same command resumes an interrupted sweep. Exit status: 0 all points succeeded, 3 some failed
(listed on stderr), 2 bad config or output file, 130 interrupted (rerun to resume).

Several jobs (no coordinator): `--part K/N` runs part K (from 0) of N, the chunks K, K+N, ..., into
OUT's part file STEM.processKofN.h5 (the file process K of an N-process jax.distributed job writes); `--part auto`
takes K and N from a SLURM array job (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT). Each part resumes on its own.
`--status` shows the chunks done and the failed points of OUT and of every part; `--merge` checks the parts
(one sweep, every chunk exactly once, checksums) and writes OUT, the same file a single run writes.
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
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--part", type=_part, metavar="K/N|auto",
                       help="run only part K (from 0) of N into OUT's part file STEM.processKofN.h5; auto: from "
                            "SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT")
    split.add_argument("--merge", action="store_true",
                       help="merge OUT's part files into OUT (checked: one sweep, every chunk once, checksums)")
    split.add_argument("--status", action="store_true",
                       help="show the chunks done and the failed points of OUT and of its part files")
    parser.set_defaults(handler=run, interrupt_note="rerun the same command to resume")
    return parser


def _part(text: str) -> tuple[int, int]:
    from ..sweeps.parts import parse_part

    try:
        return parse_part(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


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
    if args.status:
        return _status(out)
    _check_out(out)
    if args.merge:
        return _merge(args, out, say)
    part = args.part or (0, 1)
    written = out
    if part[1] > 1:
        from ..sweeps import process_path

        written = process_path(out, *part)
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
    args.interrupt_note = f"finished chunks are saved in {written}; rerun the same command to resume"
    result = sweep_solve(
        problem.H, problem.rho0, problem.ts, problem.kappa, problem.params,
        observables=problem.observables or None, solve_options=problem.solve_options,
        out=out, config=table, overwrite=args.overwrite, progress=not args.quiet, part=part, **options,
    )
    mine = result.failure != -1  # this part's points (all of them for a whole sweep)
    failed = {i: reason for i, reason in result.failed().items() if mine[i]}
    energy = " (energy: /outputs/invariants/energy)" if problem.energy else ""
    share = f" of part {part[0]} of {part[1]}" if part[1] > 1 else ""
    say(f"qllg sweep: {int(mine.sum())} points{share}, {len(failed)} failed, {time.perf_counter() - start:.1f} s -> "
        f"{written}{energy}")
    if part[1] > 1:
        say(f"qllg sweep: when every part is done: qllg sweep {args.config} --merge" +
            (f" --out {args.out}" if args.out else ""))
    for index, reason in list(failed.items())[:10]:
        print(f"  point {index} failed: {reason}", file=sys.stderr)
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more (SweepResult.failed() lists all)", file=sys.stderr)
    return 0 if not failed else EXIT_FAILED


def _merge(args, out: str, say) -> int:
    """``--merge``: check OUT's part files against each other and the config, then write OUT."""
    import json

    from ..config import load_config
    from ..sweeps import merge_sweeps
    from ..sweeps.fingerprint import _config_paths, summarize
    from ..sweeps.parts import _resolve_paths
    from ..sweeps.store import _json, open_sweep_file

    table = json.loads(_json(load_config(args.config)))
    paths = _resolve_paths(out)
    f, header = open_sweep_file(paths[0])
    f.close()
    if header.config != table:
        raise UserError(f"{paths[0]!r} holds a sweep of another config than {args.config}: "
                        f"{summarize(_config_paths(header.config, table))}")
    start = time.perf_counter()
    merge_sweeps(paths, out, overwrite=args.overwrite)
    say(f"qllg sweep: merged {len(paths)} parts into {out} in {time.perf_counter() - start:.1f} s (checked: one "
        "sweep, every chunk once, checksums); the part files may be removed")
    return 0


def _status(out: str) -> int:
    """``--status``: chunks done per file (OUT and its parts) and the failed points."""
    from ..sweeps import sweep_status

    info = sweep_status(out)
    files = info["files"]
    n_parts = sum(item["part"] is not None for item in files)
    status(f"{out}: {info['n_points']} points in {info['n_chunks']} chunks of {info['chunk_size']}; "
           + ("merged" if info["merged"] else "not merged") + (f", {n_parts} part file(s)" if n_parts else ""))
    total_failed = 0
    for item in files:
        what = "whole sweep" if item["part"] is None else f"part {item['part'][0]}/{item['part'][1]}"
        failed = item["failed"]
        total_failed += len(failed)
        line = (f"  {what} {item['path']}: {item['chunks_done']}/{item['chunks']} chunks done "
                f"({item['points_done']}/{item['points']} points), {len(failed)} failed")
        if failed:
            line += ": " + ", ".join(f"point {i} ({reason})" for i, reason in list(failed.items())[:5])
            line += f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        status(line)
    parts = [item for item in files if item["part"] is not None]
    if parts and not info["merged"]:
        n = parts[0]["part"][1]
        present = {item["part"][0] for item in parts if item["part"][1] == n}
        missing = sorted(set(range(n)) - present)
        if missing:
            status(f"  parts not started (no file): {', '.join(f'{k}/{n}' for k in missing)}")
    return 0
