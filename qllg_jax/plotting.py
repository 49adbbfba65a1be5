"""Matplotlib (Agg) drawings of :mod:`qllg_jax.paper` data, laid out like the paper's figures.

``plot_figure(data)`` returns a ``matplotlib.figure.Figure``; ``save_figure(data, path)`` writes a PNG.
Time axes are in ħ/E0 (E0 = μ_B·1 T, one unit ≈ 11.37 ps). The module keeps the current matplotlib backend (inline
in notebooks); the command line selects the non-interactive Agg backend before importing it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .paper import AXES, FIG1_CASES, FIG3_D, FigureData

TIME_LABEL = r"$t$ ($\hbar/E_0$, $\approx$11.4 ps)"
COLORS = {"x": "tab:blue", "y": "tab:orange", "z": "tab:green"}
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">")


def curve_styles(n: int, n_points: int, colors=None, markers_per_curve: int = 8) -> list[dict]:
    """Keyword arguments of ``ax.plot`` for ``n`` curves that stay distinguishable without colour: a line style and
    a marker each, markers staggered in time (a curve hidden under others still shows its markers)."""
    step = max(1, n_points // markers_per_curve)
    colors = colors if colors is not None else [f"C{k % 10}" for k in range(n)]
    return [
        dict(color=colors[k], ls=LINESTYLES[k % len(LINESTYLES)], marker=MARKERS[k % len(MARKERS)], ms=4.5,
             markevery=(int(k * step / max(n, 1)), step), mfc="white" if k % 2 else None)
        for k in range(n)
    ]


def _fig1(data: FigureData):
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True, sharey=True)
    step = max(1, len(data.ts) // 10)
    for ax, (panel, J, D) in zip(axes.flat, FIG1_CASES):
        for k, a in enumerate(AXES):  # colour and marker: component; solid, filled: quantum; dashed, open: classical
            marker = dict(marker=MARKERS[k], ms=4.5, markevery=(k * step // 3, step))
            ax.plot(data.ts, data.columns[f"{panel}_r_{a}"], color=COLORS[a], label=rf"$r_{{1{a}}}$", **marker)
            ax.plot(data.ts, data.columns[f"{panel}_m_{a}"], color=COLORS[a], ls="--", label=rf"$m_{{1{a}}}$", mfc="white",
                    **dict(marker, markevery=((k * step // 3 + step // 2), step)))
        kind = "FM" if J < 0 else "AFM"
        ax.set_title(f"({panel}) {kind}, $J={J:g}$, $D/|J|={D:g}$", fontsize=10)
        ax.axhline(0, color="0.8", lw=0.5)
        ax.set_ylim(-1.05, 1.05)
    axes[0, 0].legend(ncol=2, fontsize=8, loc="lower right")
    for ax in axes[1]:
        ax.set_xlabel(TIME_LABEL)
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\mathbf{r}_1$ (solid), $\mathbf{m}_1$ (dashed)")
    fig.suptitle(r"Fig. 1: q-LLG Bloch vector vs classical LLG from $|\uparrow\downarrow\rangle$, $\kappa=\alpha=0.5$, $\mathbf{B}=(1,0,0)$", y=1.0)
    return fig


def _fig2(data: FigureData):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    styles = {"x": "-", "y": "--", "z": ":"}
    step = max(1, len(data.ts) // 8)
    for ax, (panel, D) in zip(axes, (("a", 0.0), ("b", 0.6))):
        for i, a in enumerate(AXES):  # line style: row k; colour and marker: column l
            for j, b in enumerate(AXES):
                ax.plot(data.ts, data.columns[f"{panel}_T_{a}{b}"], color=COLORS[b], ls=styles[a], label=rf"$T_{{{a}{b}}}$",
                        marker=MARKERS[j], ms=4, mfc="white" if i else None, markevery=((3 * i + j) * step // 9, step))
        ax.set_title(f"({panel}) AFM $J=1$, $D/|J|={D:g}$", fontsize=10)
        ax.set_xlabel(TIME_LABEL)
        ax.axhline(-1, color="0.6", lw=0.8, ls=(0, (1, 3)), zorder=0, label="$-1$ (singlet: $T=-\\mathbb{1}$)")
    axes[0].set_ylabel(r"$T_{kl}$")
    axes[1].legend(ncol=1, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(r"Fig. 2: correlation matrix $T_{kl}=\mathrm{Tr}(\varrho\,\sigma_k\otimes\sigma_l)$ from $|\uparrow\downarrow\rangle$, $\kappa=0.5$", y=1.02)
    return fig


def _fig3(data: FigureData):
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for D, style in zip(FIG3_D, curve_styles(len(FIG3_D), len(data.ts))):
        ax.plot(data.ts, data.columns[f"B_D{D:g}"], label=f"$D/|J|={D:g}$", **style)
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel(r"Bell non-locality $B(\varrho)$")
    ax.set_ylim(-0.02, 1.05)
    ax.legend(fontsize=9)
    ax.set_title(r"Fig. 3: AFM dimer from $|\Psi_+\rangle$, $\mathbf{D}\parallel z\perp\mathbf{B}=(1,0,0)$, $\kappa=0.5$", fontsize=10)
    fig.tight_layout()
    return fig


def _fig4(data: FigureData):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    labels = {"phi+": r"$\Phi_+$", "phi-": r"$\Phi_-$", "psi+": r"$\Psi_+$", "psi-": r"$\Psi_-$"}
    for ax, (panel, title) in zip(axes, (("a", "FM $J=-1$"), ("b", "AFM $J=1$"))):
        for (name, label), style in zip(labels.items(), curve_styles(len(labels), len(data.ts))):
            ax.plot(data.ts, data.columns[f"{panel}_B_{name}"], label=f"Werner on {label}", **style)
        ax.set_title(f"({panel}) {title}", fontsize=10)
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylim(-0.03, 1.0)
    axes[0].set_ylabel(r"$B(\varrho)$")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(r"Fig. 4: Werner states $p=0.9$, $\mathbf{B}=(1,1,1)/\sqrt{3}$, $D/|J|=0.4$ along $z$, $\kappa=0.5$", y=1.02)
    return fig


def _spin_s(data: FigureData, title: str):
    spins = data.params["spins"]
    cmap = plt.get_cmap("viridis")
    colors = [cmap(0.92 * k / max(1, len(spins) - 1)) for k in range(len(spins))]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for s, style in zip(spins, curve_styles(len(spins), len(data.ts), colors)):
        label = f"$s={s:g}$" if s != 0.5 else "$s=1/2$"
        axes[0].plot(data.ts, data.columns[f"s{s:g}_Snorm"], label=label, lw=1.3, **style)
        axes[1].plot(data.ts, data.columns[f"s{s:g}_Sy"], label=label, lw=1.3, **style)
    axes[0].axhline(1.0, color="k", ls="--", lw=1.2, label=r"classical $|\mathbf{m}_1| = 1$")
    axes[0].annotate(r"classical LLG: $|\mathbf{m}_1| = 1$", (data.ts[-1], 1.0), xytext=(0, 4),
                     textcoords="offset points", ha="right", va="bottom", fontsize=8)
    axes[1].plot(data.ts, data.columns["m_y"], color="k", ls="--", lw=1.8, label=r"classical $m_{1y}$ ($\alpha=0.5$)")
    axes[0].set_ylabel(r"$|\langle\mathbf{S}_1\rangle|/s$")
    axes[1].set_ylabel(r"$\langle S_{1y}\rangle/s$")
    axes[0].set_title("(a)", fontsize=10)
    axes[1].set_title("(b)", fontsize=10)
    for ax in axes:
        ax.set_xlabel(TIME_LABEL)
    handles, labels = axes[0].get_legend_handles_labels()
    extra = axes[1].get_legend_handles_labels()
    fig.legend(handles + extra[0][-1:], labels + extra[1][-1:], loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=7, fontsize=8, frameon=False)
    fig.suptitle(title, y=1.02)
    return fig


def plot_figure(data: FigureData):
    """A matplotlib Figure for ``data`` (one of fig1 … fig6)."""
    if data.name == "fig1":
        return _fig1(data)
    if data.name == "fig2":
        return _fig2(data)
    if data.name == "fig3":
        return _fig3(data)
    if data.name == "fig4":
        return _fig4(data)
    if data.name in ("fig5", "fig6"):
        kind = "AFM $J=1$" if data.name == "fig5" else "FM $J=-1$"
        number = data.name[-1]
        return _spin_s(data, rf"Fig. {number}: spin-$s$ dimers, {kind}, from $|{{+s}}\rangle|{{-s}}\rangle$, $\kappa=0.5$, $\mathbf{{B}}=(1,0,0)$")
    raise ValueError(f"unknown figure {data.name!r}")


def save_figure(data: FigureData, path, dpi: int = 120) -> None:
    """Draw ``data`` and write a PNG to ``path``."""
    fig = plot_figure(data)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


OBSERVABLE_LABELS = {
    "bloch": r"$\langle \mathbf{S}_k\rangle / s_k$",
    "spin": r"$\langle \mathbf{S}_k\rangle$",
    "correlation": r"$T_{ab}$",
    "bell_nonlocality": r"Bell non-locality $B(\varrho)$",
    "concurrence": r"concurrence $C(\varrho)$",
    "energy": r"energy $\mathrm{Tr}\,\varrho H$",
    "purity": r"purity $\mathrm{Tr}\,\varrho^2$",
    "entropy": r"entropy $S(\varrho)$ (nats)",
    "passive_energy": "passive energy",
}
ENERGY_OBSERVABLES = ("energy", "passive_energy")


def _vector_panel(ax, ts, value):
    """(T, N, 3) site vectors: colour = component for N ≤ 4 sites (line style = site); else colour = site."""
    n = value.shape[1]
    if n <= len(LINESTYLES):
        for k in range(n):
            for a, axis in enumerate(AXES):
                ax.plot(ts, value[:, k, a], color=COLORS[axis], ls=LINESTYLES[k], label=f"{axis}, site {k}")
        return
    cmap = plt.get_cmap("viridis")
    for k in range(n):
        for a in range(3):
            ax.plot(ts, value[:, k, a], color=cmap(k / (n - 1)), ls=LINESTYLES[a], lw=1.0)
    for a, axis in enumerate(AXES):
        ax.plot([], [], color="0.3", ls=LINESTYLES[a], label=axis)
    ax.plot([], [], color=cmap(0.0), label="site 0")
    ax.plot([], [], color=cmap(1.0), label=f"site {n - 1}")


DRIVE_LABEL = "drive field"


def observables_figure(ts, values: dict, *, units=None, title: str = "", drive=None):
    """One panel per observable of a ``qllg run`` (legends, y-labels, units) and, for a driven run, a last panel
    with the drive field under the response; returns the Figure.

    Args:
        ts: save times (T,) in ħ/E0.
        values: dict name → array (T, ...) in config order (bloch/spin (T, N, 3), correlation (T, 3, 3), scalars (T,)).
        units: the config's :class:`~qllg_jax.units.Units` for a physical-unit config: times are drawn in ps and
            energies in meV; None: ħ/E0 and E0.
        drive: (times (T',) in ħ/E0, the drive field (T', N, 3) at them) — in tesla when ``units`` is given (B),
            else in E0 (b of H ⊃ −b·S) —, sampled finer than the save times so that a carrier is drawn without
            aliasing; None: no drive panel.
    """
    ts = np.asarray(ts)
    if units is not None:
        ts, time_label, energy_unit, energy_scale = np.asarray(units.time_to_ps(ts)), "$t$ (ps)", "meV", units.energy_meV
    else:
        time_label, energy_unit, energy_scale = r"$t$ ($\hbar/E_0$)", "$E_0$", 1.0
    if drive is not None:
        drive_ts = np.asarray(drive[0]) if units is None else np.asarray(units.time_to_ps(np.asarray(drive[0])))
        values = {**values, DRIVE_LABEL: np.asarray(drive[1])}
    fig, axes = plt.subplots(len(values), 1, figsize=(8, 1.2 + 2.1 * len(values)), sharex=True, squeeze=False)
    for ax, (name, value) in zip(axes[:, 0], values.items()):
        value = np.asarray(value)
        if name == DRIVE_LABEL and drive is not None:
            _vector_panel(ax, drive_ts, value)
            ax.set_ylabel(r"drive $\mathbf{B}_k(t)$ (T)" if units is not None else r"drive $\mathbf{b}_k(t)$ ($E_0$)",
                          fontsize=9)
            ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
            ax.grid(alpha=0.3)
            continue
        label = OBSERVABLE_LABELS.get(name, name)
        if name in ENERGY_OBSERVABLES:
            value, label = value * energy_scale, f"{label} ({energy_unit})"
        if value.ndim == 3 and name == "correlation":
            for a, row in enumerate(AXES):
                for b, col in enumerate(AXES):
                    ax.plot(ts, value[:, a, b], color=COLORS[col], ls=LINESTYLES[a], label=f"$T_{{{row}{col}}}$")
        elif value.ndim == 3 and value.shape[-1] == 3:
            _vector_panel(ax, ts, value)
        elif value.ndim == 1:
            ax.plot(ts, value, color="k")
            center, spread = float(np.mean(value)), float(np.ptp(value))
            if spread <= 1e-9 * max(1.0, abs(center)):  # constant (e.g. a conserved purity): no 1e-12 offset axis
                ax.set_ylim(center - 0.1 * max(abs(center), 1e-3), center + 0.1 * max(abs(center), 1e-3))
        else:
            flat = value.reshape(len(ts), -1)
            for k in range(flat.shape[1]):
                ax.plot(ts, flat[:, k], ls=LINESTYLES[k % 4], label=f"{name}_{k}")
        ax.set_ylabel(label, fontsize=9)
        ax.ticklabel_format(axis="y", useOffset=False)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, ncol=1 + (len(ax.get_legend_handles_labels()[0]) > 6), loc="center left",
                      bbox_to_anchor=(1.01, 0.5), frameon=False)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(time_label)
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_observables(ts, values: dict, path, *, units=None, title: str = "", drive=None) -> None:
    """:func:`observables_figure` written to a PNG at ``path``."""
    fig = observables_figure(ts, values, units=units, title=title, drive=drive)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
