"""``qllg reproduce fig1 … fig6 | all --out DIR [--quick]``: recompute the paper's figures.

Per figure it writes ``figN.png`` (laid out like the paper), ``figN.csv`` (the plotted data, column ``t_hbar_per_E0``)
and ``figN.json`` (every parameter, the package version, the invariant diagnostics of each quantum run, physics
checks and ``"written_by": "qllg reproduce"``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import status

WRITER = "qllg reproduce"
FIGURES = tuple(f"fig{k}" for k in range(1, 7))
"""The same names as :data:`qllg_jax.paper.FIGURES` (kept here so that ``qllg --help`` does not import the solver)."""

HELP = """\
Recompute figures 1-6 of Liu et al. (2024) and write PNG + CSV + JSON per figure.

Units: energies in E0 = mu_B * 1 T, times in hbar/E0 (~11.37 ps; the CSV column t_hbar_per_E0); kappa = alpha = 0.5,
|J| = 1, B = (1, 0, 0) unless the figure says otherwise. See README.md, section "Reproducing the paper", for every
choice the paper leaves open (D along z, time windows, the classical counterpart of the spin-s dimers).

Existing figN.* files in --out are replaced only if qllg reproduce wrote them (figN.json says so), else refused
unless --overwrite. A first run compiles (about a minute in all); later runs load the compiled programs from
the cache (see `qllg --help`).
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "reproduce", help="recompute the paper's figures (PNG, CSV, JSON)", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("figures", nargs="+", choices=list(FIGURES) + ["all"], metavar="FIGURE",
                        help=f"any of {', '.join(FIGURES)} or 'all'")
    parser.add_argument("--out", default="figs", help="output directory (created; default: figs)")
    parser.add_argument("--overwrite", action="store_true", help="replace figN.* files that qllg did not write")
    parser.add_argument("--quick", action="store_true", help="short time windows and few points (for tests)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=run, interrupt_note="a figure is complete when its figN.json exists (written last)")
    return parser


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # headless: files only
    from tqdm.auto import tqdm

    from .. import paper
    from .._output import prepare_output_dir
    from ..plotting import save_figure

    names = list(FIGURES) if "all" in args.figures else list(dict.fromkeys(args.figures))
    out = Path(args.out)
    groups = {f"{n}.json": [f"{n}.json", f"{n}.csv", f"{n}.png"] for n in names}
    prepare_output_dir(out, groups, WRITER, args.overwrite)
    status(f"qllg reproduce: {', '.join(names)} -> {out}/ (a first run compiles; later runs reuse the compilation cache)")
    total = sum(paper.n_runs(n, args.quick) for n in names)
    with tqdm(total=total, desc="qllg reproduce", unit="run", disable=args.no_progress) as bar:
        for name in names:
            bar.set_postfix_str(name)
            start = time.perf_counter()
            data = paper.COMPUTE[name](quick=args.quick, progress=lambda: bar.update(1))
            data.params["quick"] = bool(args.quick)
            data.params["wall_time_s"] = round(time.perf_counter() - start, 2)
            data.write_csv(out / f"{name}.csv")
            save_figure(data, out / f"{name}.png")
            data.write_json(out / f"{name}.json")  # last: its marker vouches for the CSV and PNG
    status(f"qllg reproduce: wrote {len(names)} figure(s) to {out}/: " + ", ".join(f"{n}.png/.csv/.json" for n in names))
    return 0
