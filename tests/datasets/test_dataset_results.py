"""pytorch_grad_cam.datasets.results: reading a results store, with its
names still importable from pytorch_grad_cam.datasets.store (the reading
side's tests are in test_dataset_store.py)."""
import subprocess
import sys
from pathlib import Path

import pytest

import pytorch_grad_cam.datasets as datasets
from pytorch_grad_cam.datasets import results, store

ROOT = Path(__file__).resolve().parents[2]
READING = ["Results", "load_results", "open_results", "resize_map"]


@pytest.mark.parametrize("name", READING)
def test_the_reading_names_are_the_same_objects_from_every_path(name):
    assert getattr(store, name) is getattr(results, name) is getattr(datasets, name)
    assert getattr(results, name).__module__ == "pytorch_grad_cam.datasets.results"


def test_the_store_module_still_lists_them_and_refuses_other_names():
    assert set(READING) <= set(store.__all__)
    assert results.__all__ == READING
    with pytest.raises(AttributeError, match="module 'pytorch_grad_cam.datasets.store' has no "
                                             "attribute 'load_result'"):
        store.load_result  # noqa: B018


def test_the_old_import_path_works_in_a_fresh_process():
    """``from ...store import Results`` imports the reading module on first
    use, whichever of the two modules is imported first."""
    code = ("from pytorch_grad_cam.datasets.store import Results, resize_map\n"
            "import pytorch_grad_cam.datasets.results as r\n"
            "print(Results is r.Results, resize_map is r.resize_map)\n")
    first = "import pytorch_grad_cam.datasets.results\n"
    for program in (code, first + code):
        done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert (done.returncode, done.stdout) == (0, "True True\n"), done.stderr
