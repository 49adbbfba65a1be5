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


def _fig1(data: FigureData):
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True, sharey=True)
    for ax, (panel, J, D) in zip(axes.flat, FIG1_CASES):
        for a in AXES:
            ax.plot(data.ts, data.columns[f"{panel}_r_{a}"], color=COLORS[a], label=rf"$r_{{1{a}}}$")
            ax.plot(data.ts, data.columns[f"{panel}_m_{a}"], color=COLORS[a], ls="--", label=rf"$m_{{1{a}}}$")
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
    for ax, (panel, D) in zip(axes, (("a", 0.0), ("b", 0.6))):
        for a in AXES:
            for b in AXES:
                ax.plot(data.ts, data.columns[f"{panel}_T_{a}{b}"], color=COLORS[b], ls=styles[a], label=rf"$T_{{{a}{b}}}$")
        ax.set_title(f"({panel}) AFM $J=1$, $D/|J|={D:g}$", fontsize=10)
        ax.set_xlabel(TIME_LABEL)
        ax.axhline(-1, color="0.8", lw=0.5)
    axes[0].set_ylabel(r"$T_{kl}$")
    axes[1].legend(ncol=1, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(r"Fig. 2: correlation matrix $T_{kl}=\mathrm{Tr}(\varrho\,\sigma_k\otimes\sigma_l)$ from $|\uparrow\downarrow\rangle$, $\kappa=0.5$", y=1.02)
    return fig


def _fig3(data: FigureData):
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for D in FIG3_D:
        ax.plot(data.ts, data.columns[f"B_D{D:g}"], label=f"$D/|J|={D:g}$")
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
        for name, label in labels.items():
            ax.plot(data.ts, data.columns[f"{panel}_B_{name}"], label=f"Werner on {label}")
        ax.set_title(f"({panel}) {title}", fontsize=10)
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylim(-0.02, 1.0)
    axes[0].set_ylabel(r"$B(\varrho)$")
    axes[1].legend(fontsize=8)
    fig.suptitle(r"Fig. 4: Werner states $p=0.9$, $\mathbf{B}=(1,1,1)/\sqrt{3}$, $D/|J|=0.4$ along $z$, $\kappa=0.5$", y=1.02)
    return fig


def _spin_s(data: FigureData, title: str):
    spins = data.params["spins"]
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2))
    for k, s in enumerate(spins):
        color = cmap(k / max(1, len(spins) - 1))
        label = f"$s={s:g}$" if s != 0.5 else "$s=1/2$"
        axes[0].plot(data.ts, data.columns[f"s{s:g}_Snorm"], color=color, label=label)
        axes[1].plot(data.ts, data.columns[f"s{s:g}_Sy"], color=color, label=label)
    axes[0].axhline(1.0, color="k", ls="--", lw=1.2, label="classical $|\\mathbf{m}_1|$")
    axes[1].plot(data.ts, data.columns["m_y"], color="k", ls="--", lw=1.5, label=r"classical $m_{1y}$ ($\alpha=0.5$)")
    axes[0].set_ylabel(r"$|\langle\mathbf{S}_1\rangle|/s$")
    axes[1].set_ylabel(r"$\langle S_{1y}\rangle/s$")
    axes[0].set_title("(a)", fontsize=10)
    axes[1].set_title("(b)", fontsize=10)
    for ax in axes:
        ax.set_xlabel(TIME_LABEL)
    axes[1].legend(fontsize=7, ncol=2)
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


def plot_timeseries(ts, columns: dict, path, title: str = "", xlabel: str = TIME_LABEL) -> None:
    """Generic plot of named (T,) columns (one panel) for ``qllg run``; writes a PNG."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in columns.items():
        ax.plot(ts, np.asarray(values), label=name)
    ax.set_xlabel(xlabel)
    if len(columns) <= 12:
        ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
