"""Sphinx configuration of the documentation site.

Build it from the repository root with::

    pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The tutorials (``docs/tutorials/*.py``) are sphinx-gallery scripts: every one
runs at build time, offline, on the CPU, and its pictures and printed output
go into its page. ``GRAD_CAM_DOCS_GALLERY=none`` builds the site without
running them (their code is still shown).
"""
from __future__ import annotations

import os

import matplotlib
import torch

import pytorch_grad_cam

matplotlib.use("Agg")

# The tutorials' models are small, and torch's threads cost more than they
# give there: on a 2-core CPU shared with other work, the gallery ran in
# 111 s with one thread and in 763 s with torch's default of two (which then
# wait on each other). GRAD_CAM_DOCS_THREADS=N gives the tutorials N threads.
torch.set_num_threads(int(os.environ.get("GRAD_CAM_DOCS_THREADS", "1")))

project = "grad-cam"
author = "grad-cam contributors"
copyright = "the grad-cam contributors, MIT licence"
release = pytorch_grad_cam.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "tutorials/GALLERY_HEADER.rst", "Thumbs.db", ".DS_Store",
                    "quality_table.md"]  # included by quality.md
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 4

autodoc_default_options = {"members": True, "show-inheritance": True,
                           "member-order": "bysource",
                           # a name is documented where it is defined, not where it is re-exported
                           "ignore-module-all": True}
autodoc_typehints = "description"
autodoc_preserve_defaults = True
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = True
# the methods' docstrings list their own arguments under this heading
napoleon_custom_sections = [("Arguments besides those of BaseCAM", "params_style"),
                            ("Arguments shared by the ROAD classes", "params_style")]

html_theme = "furo"
html_title = f"grad-cam {release}"
html_static_path = ["_static"]
html_show_sourcelink = False

_run = os.environ.get("GRAD_CAM_DOCS_GALLERY", "all")
sphinx_gallery_conf = {
    "examples_dirs": ["tutorials"],
    "gallery_dirs": ["auto_tutorials"],
    # every tutorial runs unless GRAD_CAM_DOCS_GALLERY=none
    "filename_pattern": r"/plot_" if _run != "none" else r"^$",
    "plot_gallery": "True" if _run != "none" else "False",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "show_memory": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
}

# a missing reference is a broken link: -W turns it into an error
nitpicky = False
suppress_warnings: list[str] = []
