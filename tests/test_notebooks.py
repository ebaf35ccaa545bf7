"""Notebooks run top to bottom, so they cannot rot."""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    # The kernel inherits this environment: exports go to tmp_path and training stays short.
    monkeypatch.setenv("MMZOO_SAVED_MODELS", str(tmp_path))
    monkeypatch.setenv("MMZOO_QUICKSTART_EPOCHS", "1")
    monkeypatch.setenv("MMZOO_QUICKSTART_SPLIT", "train[:10%]")
    monkeypatch.setenv("MMZOO_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
