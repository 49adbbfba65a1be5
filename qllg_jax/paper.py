r"""The data of every figure of Liu et al. (2024), one function per figure, reusable from Python.

Units throughout: energies in E0 = μ_B·B0 (B0 = 1 T), times in ħ/E0 ≈ 11.37 ps, κ = α = 0.5, |J| = 1,
B = (1, 0, 0) unless stated; the dimer is eq. 8 (:func:`~qllg_jax.dimer_model`). Choices the paper leaves open
(D along z, time windows, the classical counterpart of a spin-s dimer) are listed in the README section “Reproducing the paper”.

Each ``figN(quick=False)`` returns a :class:`FigureData`: save times, named columns (each (T,)) that the CSV
holds, a JSON-serialisable parameter dict and the invariant diagnostics of every quantum run.
``quick=True`` uses short windows and few points (for tests; not for comparison with the paper).
"""

from __future__ import annotations

import dataclasses

from collections.abc import Callable

import numpy as np

from ._arrays import device_array
from . import observables as obs
from ._output import write_csv, write_json
from .classical import classical_dimer
from .exact import pure_state_exact
from .hamiltonians import dimer_hamiltonian, dimer_model
from .operators import site_spin_operators, spin_matrices
from .solve import solve
from .states import BELL_STATES, bell_state, up_down_state, werner_state

KAPPA = 0.5
"""q-LLG damping κ of every figure (= classical α)."""
ALPHA = 0.5
B_X = (1.0, 0.0, 0.0)
B_111 = tuple(float(x) for x in np.ones(3) / np.sqrt(3))
FIG3_D = (0.0, 0.2, 0.4, 0.6, 1.0)
SPINS_56 = tuple(k / 2 for k in range(1, 11))  # s = 1/2, 1, ..., 5
FIGURES = ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6")
AXES = "xyz"


TIME_COLUMN = "t_hbar_per_E0"
"""The CSV's time column: times in ħ/E0 (E0 = μ_B·1 T, one unit ≈ 11.37 ps)."""


@dataclasses.dataclass
class FigureData:
    """Data of one figure.

    Attributes:
        name: ``"fig1"`` … ``"fig6"``.
        ts: save times (T,) in ħ/E0.
        columns: dict column name → array (T,) (the CSV columns after ``t_hbar_per_E0``; all dimensionless: Bloch
            vectors, correlations, Bell non-locality, ⟨S⟩/s).
        params: every parameter (JSON-serialisable).
        diagnostics: dict run name → :meth:`Diagnostics.as_dict` of that quantum run.
        checks: dict of scalar physics checks (e.g. final values) recorded in the JSON.
    """

    name: str
    ts: np.ndarray
    columns: dict[str, np.ndarray]
    params: dict
    diagnostics: dict[str, dict] = dataclasses.field(default_factory=dict)
    checks: dict[str, float] = dataclasses.field(default_factory=dict)

    def write_csv(self, path) -> None:
        """Columns ``t_hbar_per_E0`` (the time, its unit in the name) then every data column, one row per save time."""
        write_csv(path, {TIME_COLUMN: self.ts, **self.columns})

    def metadata(self) -> dict:
        from ._version import __version__

        return {
            "written_by": "qllg reproduce",
            "figure": self.name,
            "qllg_jax_version": __version__,
            "units": {"energy": "E0 = mu_B * 1 T", "time": "hbar/E0 (~11.37 ps)",
                      "columns": {TIME_COLUMN: "hbar/E0", **dict.fromkeys(self.columns, "1")}},
            "params": self.params,
            "diagnostics": self.diagnostics,
            "checks": self.checks,
            "columns": [TIME_COLUMN] + list(self.columns),
        }

    def write_json(self, path) -> None:
        """Strict JSON (non-finite numbers, e.g. an undefined diagnostic, are written as ``null``)."""
        write_json(path, self.metadata())


def _times(t_end: float, n: int, quick: bool, quick_end: float | None = None) -> np.ndarray:
    return np.linspace(0.0, quick_end if quick else t_end, 41 if quick else n)


def _quantum(H, rho0, ts, observables: dict[str, Callable], method="auto"):
    # States are kept (a few hundred 4×4 matrices) so that the spectrum drift is measured on every path.
    result = solve(H, rho0, device_array(ts), KAPPA, method=method, observables=observables, save_states=True)
    return {k: np.asarray(v) for k, v in result.observables.items()}, result.diagnostics().as_dict()


def _tick(progress):
    if progress is not None:
        progress()


FIG1_CASES = (("a", -1.0, 0.0), ("b", 1.0, 0.0), ("c", -1.0, 0.6), ("d", 1.0, 0.6))
"""Fig. 1 panels: (label, J, D/|J|); D along z."""


def fig1(quick: bool = False, progress: Callable | None = None) -> FigureData:
    """Fig. 1: Bloch vector r1 (q-LLG) and classical m1 (LLG) from |↑↓⟩ / m1 = +z, m2 = −z.

    Panels (a) FM J = −1, D = 0; (b) AFM J = 1, D = 0; (c) FM, D = 0.6|J|; (d) AFM, D = 0.6|J| (D along z).
    Columns ``{panel}_r_{x,y,z}`` (quantum r1) and ``{panel}_m_{x,y,z}`` (classical m1), each (T,).
    """
    ts = _times(10.0, 401, quick, 3.0)
    columns, diagnostics, checks = {}, {}, {}
    for panel, J, D in FIG1_CASES:
        dvec = (0.0, 0.0, D * abs(J))
        values, diagnostics[panel] = _quantum(
            dimer_hamiltonian(B_X, J, dvec), up_down_state(), ts, {"r": lambda rho: obs.bloch_vectors(rho)}
        )
        m = np.asarray(classical_dimer(B_X, J, dvec, (0, 0, 1), (0, 0, -1), device_array(ts), ALPHA))
        for k, axis in enumerate(AXES):
            columns[f"{panel}_r_{axis}"] = values["r"][:, 0, k]
        for k, axis in enumerate(AXES):
            columns[f"{panel}_m_{axis}"] = m[:, 0, k]
        checks[f"{panel}_final_r_norm"] = float(np.linalg.norm(values["r"][-1, 0]))
        checks[f"{panel}_final_m_norm"] = float(np.linalg.norm(m[-1, 0]))
        _tick(progress)
    params = dict(
        B=B_X, kappa=KAPPA, alpha=ALPHA, cases=[dict(panel=p, J=J, D=[0.0, 0.0, D * abs(J)]) for p, J, D in FIG1_CASES],
        initial_state="|up,down>", classical_initial=dict(m1=[0, 0, 1], m2=[0, 0, -1]), t_end=float(ts[-1]), n_save=len(ts),
        hamiltonian="eq. 8: -B.(s1+s2) + J s1.s2 + D.(s1 x s2)",
    )
    return FigureData("fig1", ts, columns, params, diagnostics, checks)


def fig2(quick: bool = False, progress: Callable | None = None) -> FigureData:
    """Fig. 2: correlation matrix T_kl(t) of the AFM dimer (J = 1) from |↑↓⟩; (a) D = 0, (b) D = 0.6 (along z).

    Columns ``{panel}_T_{kl}`` with k, l ∈ {x, y, z}.
    """
    ts = _times(10.0, 401, quick, 3.0)
    columns, diagnostics, checks = {}, {}, {}
    for panel, D in (("a", 0.0), ("b", 0.6)):
        values, diagnostics[panel] = _quantum(
            dimer_hamiltonian(B_X, 1.0, (0.0, 0.0, D)), up_down_state(), ts, {"T": obs.correlation_matrix}
        )
        for k, a in enumerate(AXES):
            for l, b in enumerate(AXES):
                columns[f"{panel}_T_{a}{b}"] = values["T"][:, k, l]
        checks[f"{panel}_final_T_diag"] = np.diag(values["T"][-1]).tolist()
        checks[f"{panel}_final_T_xy_minus_T_yx"] = float(values["T"][-1, 0, 1] - values["T"][-1, 1, 0])
        _tick(progress)
    params = dict(B=B_X, J=1.0, D_panels=dict(a=[0, 0, 0.0], b=[0, 0, 0.6]), kappa=KAPPA, initial_state="|up,down>",
                  t_end=float(ts[-1]), n_save=len(ts))
    return FigureData("fig2", ts, columns, params, diagnostics, checks)


def fig3(quick: bool = False, progress: Callable | None = None) -> FigureData:
    """Fig. 3: Bell non-locality B(t) from Ψ+ for the AFM dimer (J = 1), B along x, D ⊥ B along z, several D.

    Columns ``B_D{D}`` for D in :data:`FIG3_D`.
    """
    ts = _times(10.0, 801, quick, 3.0)
    columns, diagnostics, checks = {}, {}, {}
    for D in FIG3_D:
        key = f"B_D{D:g}"
        values, diagnostics[key] = _quantum(
            dimer_hamiltonian(B_X, 1.0, (0.0, 0.0, D)), bell_state("psi+"), ts, {"B": obs.bell_nonlocality}
        )
        columns[key] = values["B"]
        checks[f"{key}_final"] = float(values["B"][-1])
        _tick(progress)
    params = dict(B=B_X, J=1.0, D_values=list(FIG3_D), D_direction=[0, 0, 1], kappa=KAPPA, initial_state="Psi+",
                  t_end=float(ts[-1]), n_save=len(ts))
    return FigureData("fig3", ts, columns, params, diagnostics, checks)


def fig4(quick: bool = False, progress: Callable | None = None) -> FigureData:
    """Fig. 4: B(t) for Werner states p = 0.9 on the four Bell states, B = (1,1,1)/√3, D = 0.4|J| along z,
    (a) FM J = −1 and (b) AFM J = 1. Dense q-LLG solve. Columns ``{panel}_B_{bell}``."""
    ts = _times(8.0, 401, quick, 3.0)
    columns, diagnostics, checks = {}, {}, {}
    for panel, J in (("a", -1.0), ("b", 1.0)):
        H = dimer_hamiltonian(B_111, J, (0.0, 0.0, 0.4))
        for name in BELL_STATES:
            key = f"{panel}_B_{name}"
            values, diagnostics[key] = _quantum(H, werner_state(name, 0.9), ts, {"B": obs.bell_nonlocality}, method="dense")
            columns[key] = values["B"]
            checks[f"{key}_final"] = float(values["B"][-1])
            checks[f"{key}_min"] = float(values["B"].min())
            _tick(progress)
    params = dict(B=list(B_111), J_panels=dict(a=-1.0, b=1.0), D=[0, 0, 0.4], p=0.9, bell_states=list(BELL_STATES),
                  kappa=KAPPA, method="dense", t_end=float(ts[-1]), n_save=len(ts))
    return FigureData("fig4", ts, columns, params, diagnostics, checks)


def spin_s_dimer(s: float, J: float, D=(0.0, 0.0, 0.0), B=B_X):
    r"""The spin-s dimer of Figs. 5–6: H = 2s·[−B·(n1+n2) + J n1·n2 + D·(n1×n2)] with n = S/s.

    For s = 1/2 (n = σ) this is eq. 8; for any s its classical limit (S → s m) is exactly the unit-vector
    dimer of :func:`~qllg_jax.classical_dimer` (b1 = B − J m2 − m2×D), with quantum corrections O(1/s).
    Built as ``dimer_model(B, J/(2s), D/(2s), spin=s)``. Returns the :class:`SpinModel`; its classical limit
    ``classical_llg(spin_s_dimer(s, J, D), …)`` equals ``classical_dimer(B, J, D, …)`` for every s (tested).
    """
    return dimer_model(B, J / (2 * s), tuple(np.asarray(D, dtype=float) / (2 * s)), spin=s)


def spin_s_hamiltonian(s: float, J: float, B=B_X) -> np.ndarray:
    """Dense matrix of :func:`spin_s_dimer` with D = 0 (d², d²), d = 2s + 1, from embedded spin operators.

    A fast path for Figs. 5–6 (``SpinModel.matrix`` applies H column by column; this is one einsum);
    ``tests/test_paper.py`` checks it equals ``spin_s_dimer(s, J).matrix()``.
    """
    S1, S2 = (np.asarray(x) for x in site_spin_operators((s, s)))
    B = np.asarray(B, dtype=float)
    return -2 * np.einsum("a,aij->ij", B, S1 + S2) + (2 * J / s) * np.einsum("aij,ajk->ik", S1, S2)


def _spin_s(name: str, J: float, quick: bool, progress) -> FigureData:
    ts = _times(12.0, 241, quick, 3.0)
    spins = SPINS_56[:3] if quick else SPINS_56
    m = np.asarray(classical_dimer(B_X, J, (0, 0, 0), (0, 0, 1), (0, 0, -1), device_array(ts), ALPHA))
    columns = {f"m_{a}": m[:, 0, k] for k, a in enumerate(AXES)}
    diagnostics, checks = {}, {}
    for s in spins:
        d = round(2 * s + 1)
        # the exact pure-state solution (supplement eq. 28); ⟨S⟩ of spin 1 from its reduced state
        H = device_array(spin_s_hamiltonian(s, J))
        psi = np.asarray(pure_state_exact(H, up_down_state(s), device_array(ts), KAPPA)).reshape(len(ts), d, d)
        rho1 = np.einsum("tab,tcb->tac", psi, psi.conj())
        S = np.real(np.einsum("tac,kca->tk", rho1, np.asarray(spin_matrices(s)))) / s
        for k, a in enumerate(AXES):
            columns[f"s{s:g}_S{a}"] = S[:, k]
        columns[f"s{s:g}_Snorm"] = np.linalg.norm(S, axis=-1)
        checks[f"s{s:g}_rms_deviation_from_classical"] = float(np.sqrt(np.mean((S - m[:, 0]) ** 2)))
        norms = np.linalg.norm(psi.reshape(len(ts), -1), axis=-1)
        diagnostics[f"s{s:g}"] = {"norm_error": float(np.abs(norms - 1).max())}
        _tick(progress)
    params = dict(B=B_X, J=J, D=[0, 0, 0], kappa=KAPPA, alpha=ALPHA, spins=list(spins), initial_state="|+s>|-s>",
                  hamiltonian="2s[-B.(n1+n2) + J n1.n2], n = S/s (eq. 8 for s = 1/2)", plotted="spin 1, <S>/s",
                  method="pure_state_exact (supplement eq. 28)", t_end=float(ts[-1]), n_save=len(ts))
    return FigureData(name, ts, columns, params, diagnostics, checks)


def fig5(quick: bool = False, progress: Callable | None = None) -> FigureData:
    """Fig. 5: spin-s dimers, AFM J = 1, from |+s⟩|−s⟩: ⟨S1⟩/s and |⟨S1⟩|/s vs classical m1 (α = 0.5).

    Columns ``m_{x,y,z}`` (classical), ``s{s}_S{x,y,z}`` and ``s{s}_Snorm`` for s = 1/2 … 5.
    """
    return _spin_s("fig5", 1.0, quick, progress)


def fig6(quick: bool = False, progress: Callable | None = None) -> FigureData:
    """Fig. 6: as :func:`fig5` for FM coupling J = −1."""
    return _spin_s("fig6", -1.0, quick, progress)


def n_runs(name: str, quick: bool = False) -> int:
    """Number of progress ticks (quantum runs) of a figure."""
    return {"fig1": 4, "fig2": 2, "fig3": len(FIG3_D), "fig4": 8}.get(name, 3 if quick else len(SPINS_56))


COMPUTE = {"fig1": fig1, "fig2": fig2, "fig3": fig3, "fig4": fig4, "fig5": fig5, "fig6": fig6}

