"""Execute the notebooks that are cheap enough (quickstart, finite_temperature) so they cannot rot (the paper-figures notebook is run by hand: ~1 min)."""

import os
from pathlib import Path

import nbclient  # the [test] extra; a missing package must fail, not skip
import nbformat

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_notebook_executes(monkeypatch):
    path = ROOT / "notebooks" / "quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)
    # the kernel imports this checkout's qllg_jax (not an older installed copy)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    text = "".join(o.get("text", "") for o in outputs)
    assert "(201, 2, 3)" in text and "trace_error" in text


def test_finite_temperature_notebook_executes(monkeypatch):
    """notebooks/finite_temperature.ipynb (FAST sizes): one spin's ensemble ⟨S_z⟩/s at τ = 0.6 within 4 SE of the
    Langevin law L(sb/τ) and more than 4 SE from tanh(sb/τ) (8 SE apart at K = 64); each trajectory's entropy
    stays 0 (≤ 1e-10: Hermitian noise) while the ensemble average's grows (> 0.1 nats)."""
    import re

    path = ROOT / "notebooks" / "finite_temperature.ipynb"
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("QLLG_NOTEBOOK_FULL", raising=False)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    text = "".join(o.get("text", "") for o in outputs)
    row = re.search(r"tau = 0\.60: q-LLG ([\d.]+) \+- ([\d.]+), classical LLG [-\d.]+, L\(sb/tau\) ([\d.]+), "
                    r"tanh\(sb/tau\) ([\d.]+)", text)
    mean, se, langevin, tanh = map(float, row.groups())
    assert abs(mean - langevin) <= 4 * se and abs(mean - tanh) > 4 * se, row.group(0)
    assert float(re.search(r"max per-trajectory entropy: (\S+)", text).group(1)) < 1e-10
    assert float(re.search(r"entropy of the ensemble average at t_end: (\S+)", text).group(1)) > 0.1
