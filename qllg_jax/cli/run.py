"""``qllg run CONFIG.toml --out DIR``: integrate a system described in a TOML config.

Writes ``observables.csv`` (column ``t_hbar_per_E0``, ``t_ps`` for physical-unit configs, then the observables'
components in config order; energies as ``energy_E0``, or ``energy_meV`` for physical-unit configs, in the plot's
unit), ``run.json`` (the config, the package version, solver statistics, invariant
diagnostics, ``"written_by": "qllg run"``) and ``observables.png`` (one panel per observable; unless --no-plot).
With ``[[drive]]`` tables the CSV ends with the drive field on every site, ``b_<site>_<x|y|z>_T`` (tesla, for
physical-unit configs) or ``b_<site>_<x|y|z>_E0`` (b of H ⊃ −b·S), the plot draws it in a last panel under the
response, and ``run.json`` lists the drives under ``"drives"`` (their tables and numbers in solver units).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import EXIT_FAILED, status

WRITER = "qllg run"
TIME_COLUMN = "t_hbar_per_E0"
ENERGY_OBSERVABLES = ("energy", "passive_energy")  # the observables with the unit of energy (as in the plot)
FILES = ("run.json", "observables.csv", "observables.png")
CLOSED_FORMS = ("exact", "two_level")
DRIVE_PLOT_POINTS = 4001
"""Times at which the plot draws the drive field (the CSV has it at the save times)."""

HELP = """\
Run the q-LLG dynamics of a system described in a TOML file and write CSV + JSON (+ PNG).

Every key, its type, default and unit: `qllg config reference`. Check a config without running it:
`qllg config check FILE`.

Tables:
  [system]         exactly one of: dimer = {B, J, D, spin} (the paper's eq. 8: H = -B.(s1+s2) + J s1.s2 + D.(s1 x s2)
                   with Pauli matrices s), chain = n (+ spin, periodic) or spins = [...] (+ bonds); with chain/spins:
                   field, exchange, dmi, anisotropy, anisotropy_axis on spin operators S.
                   NOTE: a dimer's J multiplies sigma1.sigma2 = 4 S1.S2; a chain's exchange multiplies S_i.S_j.
  [initial_state]  kind = up_down | bell | werner | coherent | thermal | random | basis (+ its parameters,
                   e.g. thermal needs beta or temperature_K, coherent needs directions)
  [dynamics]       kappa, t_end (+ t_start, n_save) or times, equation, method, solver, rtol, atol, max_steps
  [output]         observables = bloch, spin, energy, purity, entropy, passive_energy, and for two spin-1/2
                   sites only: correlation, bell_nonlocality, concurrence
  [units]          optional, see Units
  [[drive]]        optional, any number: field drives (shape = gaussian | rectangular | cosine | sine | chirp |
                   rotating, direction, amplitude, centre/width, start/stop/rise, frequency, phase, sites); the
                   CSV gets the drive field columns b_<site>_<x|y|z>_T (or _E0) and the plot a drive panel

Units: by default energies and fields are in E0 and times in hbar/E0 (hbar = 1). With [units] kind = "physical",
fields are in tesla (g = 2), exchange/DMI/anisotropy in meV, temperatures in K and times in ps
(E0 = mu_B * b0_tesla); the CSV adds a column t_ps, writes energies in meV (energy_meV) and the plot
uses ps and meV.

Example:
  [system]
  dimer = { B = [1.0, 0.0, 0.0], J = 1.0, D = [0.0, 0.0, 0.6] }
  [initial_state]
  kind = "up_down"
  [dynamics]
  kappa = 0.5
  t_end = 10.0
  n_save = 201
  [output]
  observables = ["bloch", "correlation", "bell_nonlocality", "energy", "purity"]

Existing files in --out are replaced only if an earlier `qllg run` wrote them (its run.json says so), else
refused unless --overwrite. Exit status: 0 success, 2 bad config or output, 3 the solve failed (outputs are
still written, run.json says why), 130 interrupted.
"""

_AXES = "xyz"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run", help="run a system described in a TOML config", description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="TOML file; see `qllg config reference`")
    parser.add_argument("--out", default="qllg-run", help="output directory (created; default: qllg-run)")
    parser.add_argument("--overwrite", action="store_true", help="replace output files that qllg did not write")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    parser.add_argument("--progress", action="store_true", help="show a progress bar over simulation time")
    parser.set_defaults(handler=run, interrupt_note="nothing was written")
    return parser


def flatten_observables(values: dict) -> dict[str, np.ndarray]:
    """Observable arrays (T, *shape) → named (T,) columns, in the order of ``values``: bloch (T, N, 3) →
    bloch_{k}_{x,y,z}, correlation (T, 3, 3) → correlation_{xy…}, scalars keep their name."""
    import numpy as np

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


def _drive_columns(system, ts):
    """(CSV columns, their units, (times, (T', N, 3) field) for the plot, or None) of the drive field of a driven system:
    b_<site>_<axis>_T in tesla (B = b/(g mu_B/E0), g = 2) for physical-unit configs, else _E0 (b of H ⊃ −b·S)."""
    if system.drive is None:
        return {}, {}, None
    import numpy as np

    from ..config.drives import drive_field

    scale = 1.0 if system.units is None else 1.0 / system.units.field(1.0)
    unit = "E0" if system.units is None else "T"
    field = drive_field(system.H, ts) * scale
    columns = {f"b_{k}_{a}_{unit}": field[:, k, i] for k in range(field.shape[1]) for i, a in enumerate(_AXES)}
    fine = np.linspace(ts[0], ts[-1], max(len(ts), DRIVE_PLOT_POINTS))  # the plot resolves the carrier
    return columns, dict.fromkeys(columns, unit), (fine, drive_field(system.H, fine) * scale)


def _describe(system) -> str:
    model = system.model
    spins = sorted(set(model.spins))
    spin_text = f"spin {spins[0]:g}" if len(spins) == 1 else "spins " + "/".join(f"{s:g}" for s in spins)
    return f"{model.n_sites} sites ({spin_text}), D = {model.dim}, {len(system.ts)} save times"


def run(args) -> int:
    status(f"qllg run: {args.config} -> {args.out}/")  # at once: the imports below take a second
    import numpy as np

    from .._version import __version__
    from .._failures import Failure
    from .._output import prepare_output_dir, write_csv, write_json
    from ..config import build_system, load_config
    from ..config.system import coupling_note

    table = load_config(args.config)
    system = build_system(table)
    out = Path(args.out)
    replaced = prepare_output_dir(out, {"run.json": FILES}, WRITER, args.overwrite)
    if "sweep" in table:
        status(f"qllg run: note: {args.config} has a [sweep] table; qllg run runs its base config (qllg sweep runs the sweep)")
    if replaced:
        status(f"qllg run: replacing the earlier qllg run output in {out}/")
    if coupling_note(table):
        status(f"qllg run: note: {coupling_note(table)}")
    from .._guards import format_bytes

    prepared = system.prepare(progress=args.progress, save_states=False, throw=False)  # ϱ0 read once
    status(f"qllg run: {_describe(system)}; method {prepared.method.name!r}, about {format_bytes(prepared.nbytes)} "
           "of memory; solving (a first run compiles; later runs reuse the compilation cache)")
    result = prepared.run()
    if args.progress and result.method in CLOSED_FORMS:
        status(f"qllg run: method {result.method!r} is a closed form: no time stepping, so no progress to show")
    values = {name: result.observables[name] for name in system.observables}  # config order
    energy_unit, energy_scale = ("E0", 1.0) if system.units is None else ("meV", system.units.energy_meV)
    ts = np.asarray(result.ts)
    head = {TIME_COLUMN: ts}
    if system.units is not None:
        head["t_ps"] = system.times_ps
    columns, column_units = {}, {TIME_COLUMN: "hbar/E0", "t_ps": "ps"}
    for name, value in values.items():  # energies in the plot's unit, named with it; the rest is dimensionless
        if name in ENERGY_OBSERVABLES:
            part, unit = {f"{name}_{energy_unit}": np.asarray(value) * energy_scale}, energy_unit
        else:
            part, unit = flatten_observables({name: value}), "1"
        columns.update(part)
        column_units.update(dict.fromkeys(part, unit))
    drive_part, drive_units, drive_plot = _drive_columns(system, ts)
    columns.update(drive_part)
    column_units.update(drive_units)
    success = bool(np.all(np.asarray(result.success)))
    failure = int(np.max(np.asarray(result.stats["failure"]))) if "failure" in result.stats else 0
    write_csv(out / "observables.csv", {**head, **columns})
    meta = {
        "written_by": WRITER,
        "qllg_jax_version": __version__,
        "config": system.table,
        "config_file": str(args.config),
        "units": {"energy": "E0" if system.units is None else f"E0 = {system.units.energy_meV:.6g} meV",
                  "time": "hbar/E0" if system.units is None else f"hbar/E0 = {system.units.time_ps:.6g} ps",
                  "stats.t_reached": "hbar/E0", "diagnostics.energy_increase": "E0",
                  "columns": {name: column_units[name] for name in [*head, *columns]}},
        "method": result.method,
        "success": success,
        "failure": None if success else Failure.of(failure).message,
        "stats": {k: np.asarray(v).tolist() for k, v in result.stats.items()},
        "diagnostics": result.diagnostics().as_dict() if success else None,
        "columns": list(head) + list(columns),
    }
    if system.drives:
        from ..config.drives import describe_drives

        meta["drives"] = describe_drives(system.drives, system.units)
    write_json(out / "run.json", meta)
    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")  # headless: files only
        from ..plotting import plot_observables

        plot_observables(ts, values, out / "observables.png", units=system.units, title=f"qllg run {Path(args.config).name}",
                         drive=drive_plot)
    status(f"qllg run: wrote {out}/observables.csv, run.json" + ("" if args.no_plot else ", observables.png"))
    if not success:
        reached = result.stats.get("t_reached")
        where = "" if reached is None else f" at t = {float(np.min(np.asarray(reached))):g} hbar/E0"
        print(f"qllg run: the solve failed{where}: {meta['failure']}; outputs written, see run.json", file=sys.stderr)
        return EXIT_FAILED
    return 0
