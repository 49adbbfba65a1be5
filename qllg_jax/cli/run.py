"""``qllg run CONFIG.toml --out DIR``: integrate a user-described system (see :mod:`qllg_jax.config`).

Writes ``observables.csv`` (column ``t`` in ħ/E0, plus ``t_ps`` for physical-unit configs, then one column per
observable component, e.g. ``bloch_0_x``, ``correlation_xy``, ``energy``), ``run.json`` (the config, the
package version, solver statistics and invariant diagnostics) and ``observables.png`` (unless --no-plot).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HELP = """\
Run the q-LLG dynamics of a system described in a TOML file and write CSV + JSON (+ PNG).

Units: by default energies/fields are in E0 and times in hbar/E0 (hbar = 1). With [units] kind = "physical"
fields are in tesla (g = 2), exchange/DMI/anisotropy in meV and times in ps (E0 = mu_B * b0_tesla).

Example config:
  [system]
  dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }   # eq. 8 of the paper
  [initial_state]
  kind = "up_down"
  [dynamics]
  kappa = 0.5
  t_end = 10.0
  n_save = 201
  [output]
  observables = ["bloch", "correlation", "bell_nonlocality", "energy", "purity"]
"""

_AXES = "xyz"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run", help="run a system described in a TOML config", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="TOML file (tables [system], [initial_state], [dynamics], [output], [units])")
    parser.add_argument("--out", default="qllg-run", help="output directory (created; default: qllg-run)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--progress", action="store_true", help="show a progress bar over simulation time")
    parser.set_defaults(handler=run)
    return parser


def flatten_observables(values: dict) -> dict[str, np.ndarray]:
    """Observable arrays (T, *shape) → named (T,) columns: bloch (T, N, 3) → bloch_{k}_{x,y,z}, (T, 3, 3) →
    name_{xy…}, scalars keep their name."""
    columns = {}
    for name, value in values.items():
        value = np.asarray(value)
        if value.ndim == 1:
            columns[name] = value
        elif name == "correlation":
            for a in range(3):
                for b in range(3):
                    columns[f"{name}_{_AXES[a]}{_AXES[b]}"] = value[:, a, b]
        elif value.ndim == 3 and value.shape[-1] == 3:
            for k in range(value.shape[1]):
                for a in range(3):
                    columns[f"{name}_{k}_{_AXES[a]}"] = value[:, k, a]
        else:
            flat = value.reshape(value.shape[0], -1)
            for k in range(flat.shape[1]):
                columns[f"{name}_{k}"] = flat[:, k]
    return columns


def run(args) -> int:
    from .. import __version__
    from ..config import build_system, load_config
    from .._output import write_csv, write_json

    system = build_system(load_config(args.config))
    result = system.solve(progress=args.progress, save_states=False)
    columns = flatten_observables(result.observables)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ts = np.asarray(result.ts)
    head = {"t": ts}
    if system.units is not None:
        head["t_ps"] = system.times_ps
    write_csv(out / "observables.csv", {**head, **columns})
    meta = {
        "qllg_jax_version": __version__,
        "config": system.table,
        "config_file": str(args.config),
        "units": {"energy": "E0" if system.units is None else f"E0 = {system.units.energy_meV:.6g} meV",
                  "time": "hbar/E0" if system.units is None else f"hbar/E0 = {system.units.time_ps:.6g} ps"},
        "method": result.method,
        "success": bool(np.all(np.asarray(result.success))),
        "stats": {k: np.asarray(v).tolist() for k, v in result.stats.items()},
        "diagnostics": result.diagnostics().as_dict(),
        "columns": list(head) + list(columns),
    }
    write_json(out / "run.json", meta)
    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")  # headless: files only
        from ..plotting import plot_timeseries

        plot_timeseries(ts, columns, out / "observables.png", title=f"qllg run {Path(args.config).name}")
    print(f"wrote {out}/observables.csv, run.json" + ("" if args.no_plot else ", observables.png"))
    return 0
