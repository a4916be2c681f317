"""Every tutorial in notebooks/ runs top to bottom, in a real kernel, against a real data store.

The store is the sample survey (``platform_lib.data.sample``: romanisim cutouts, two optical
elements, two epochs, the PSF library), made once per session in a temporary folder and handed
to the kernels through ``ROMAN_DATA_URL``, exactly as the spawner does on the platform.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def inline_figures(nb: nbformat.NotebookNode) -> int:
    """How many ``image/png`` outputs the executed notebook shows (what JupyterLab renders)."""
    return sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result")
    )


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    from platform_lib.data.sample import SampleSpec, make_sample

    root = tmp_path_factory.mktemp("notebook-store")
    spec = SampleSpec(detectors=("WFI01",), optical_elements=("F158", "F087"), epochs=2, size=128)
    make_sample(str(root), spec, progress=False)
    return str(root)


def test_there_are_tutorials() -> None:
    assert len(NOTEBOOKS) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(
    path: Path, sample_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROMAN_DATA_URL", sample_store)
    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    assert inline_figures(nb) >= 1, (
        f"{path.name} shows no inline figure (matplotlib Agg or savefig only?)"
    )
