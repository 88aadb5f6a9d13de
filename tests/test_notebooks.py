"""The notebooks run end to end on a tiny phantom and are committed without outputs.

Each notebook's first code cell is tagged ``parameters``; the test appends smaller
values to it (:func:`inject_parameters`) and runs the notebook with nbclient in a fresh
kernel of the current interpreter. Everything the notebooks write goes under
``tmp_path`` (``OUT_DIR`` and ``GITRACT_CACHE``), never into the repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

try:
    import ipykernel  # noqa: F401  (the kernel nbclient starts)
    import nbformat
    from nbclient import NotebookClient
except ImportError as exc:  # pragma: no cover - depends on the test extra
    pytest.skip(
        "notebook tests need nbformat, nbclient and ipykernel "
        f"(pip install -e '.[test]'): {exc}",
        allow_module_level=True,
    )

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _tiny_overrides() -> dict:
    """tiny.yaml on a smaller phantom, block classifiers single-threaded.

    LightGBM's OpenMP threads spin-wait on a busy 2-core machine: its 0.2 s fit took
    9 s with the default ``n_jobs=-1``.
    """
    raw = yaml.safe_load((ROOT / "experiments" / "configs" / "tiny.yaml").read_text())
    tracks = []
    for track in raw["tracks"]:
        params = dict(track.get("params", {}))
        if track.get("kind") == "blocks":
            params["model_params"] = {**params.get("model_params", {}), "n_jobs": 1}
        tracks.append({**track, "params": params})
    data = {
        "kind": "phantom",
        "phantom": {"n_cases": 3, "n_days": 1, "n_slices": 6, "sizes": [[80, 80]]},
    }
    return {"data": data, "tracks": tracks}


#: Small values for every notebook (each runs in well under a minute on 2 busy cores).
PARAMETERS = {
    "01_data_tour.ipynb": {
        "N_CASES": 2,
        "N_DAYS": 1,
        "N_SLICES": 6,
        "SIZES": ((80, 80), (96, 80)),
    },
    "02_blocks_and_probability_maps.ipynb": {
        "N_CASES": 3,
        "N_SLICES": 6,
        "SIZE": (96, 96),
        "N_PER_CLASS": 10,
        "BACKGROUND_CAP": 20,
        "N_ESTIMATORS": 10,
    },
    "03_reading_a_report.ipynb": {"OVERRIDES": _tiny_overrides()},
}


def parameters_cell(nb):
    """The first code cell, which must carry the ``parameters`` tag."""
    cell = next(c for c in nb.cells if c.cell_type == "code")
    tags = cell.metadata.get("tags", [])
    assert "parameters" in tags, "the first code cell is not tagged 'parameters'"
    return cell


def inject_parameters(nb, values: dict) -> None:
    """Append ``NAME = value`` lines to the parameters cell; names must exist there."""
    cell = parameters_cell(nb)
    for name in values:
        assert f"\n{name} =" in "\n" + cell.source, f"{name} is not a parameter"
    lines = [f"{name} = {value!r}" for name, value in values.items()]
    cell.source += "\n# injected by tests/test_notebooks.py\n" + "\n".join(lines)


def test_every_notebook_has_parameters_for_the_test():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(PARAMETERS)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    parameters_cell(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{name}: commit the notebook without outputs"
            assert cell.execution_count is None, f"{name}: clear execution counts"


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("GITRACT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    out = tmp_path / "out"
    out.mkdir()
    inject_parameters(nb, {**PARAMETERS[name], "OUT_DIR": str(out)})
    # "python3" is ipykernel's native spec: this interpreter, installed spec or not.
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors
    assert any(out.iterdir()), "the notebook wrote nothing under OUT_DIR"
