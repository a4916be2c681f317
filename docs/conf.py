"""Sphinx configuration of the documentation site (``make docs``; tests/docs/test_site.py).

The pages are the Markdown files of this folder (MyST), the tutorials of ``notebooks/``
(rendered as committed, not executed), the API reference generated from ``platform_lib``
(docs/_ext/apigen.py) and the CLI reference generated from the ``roman-platform`` parser
(sphinx-argparse on ``platform_lib.cli.build_parser``). CI builds it with ``-W``: a warning is
an error.
"""

from __future__ import annotations

import sys
from importlib.metadata import version as _version
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(REPO))

project = "Roman Science Platform"
author = "the Roman Science Platform developers"
copyright = "the Roman Science Platform developers"
release = _version("roman-science-platform")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",  # MyST Markdown pages and the notebooks (it loads myst_parser itself)
    "sphinxarg.ext",
    "apigen",  # docs/_ext/apigen.py: the API pages of platform_lib
    "repolinks",  # docs/_ext/repolinks.py: links to repository files outside docs/
    "tutorials",  # docs/_ext/tutorials.py: notebooks/ copied in as docs/tutorials/
    "pydantic_fields",  # docs/_ext/pydantic_fields.py: a model's fields as a table
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "jupyter_execute"]
templates_path: list[str] = []

# Curly quotes and ellipses, but no dashes: "--url" in prose and in the CLI's help texts must
# stay two hyphens, not become an en dash.
smartquotes_action = "qe"

# A code block without a language (the CLI's usage lines among them) is plain text, not Python.
highlight_language = "none"

# MyST
myst_enable_extensions = ["colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3  # [text](page.md#a-heading) works for h1..h3

# Notebooks: shown as committed; CI executes them in a real user server (tests/notebooks).
nb_execution_mode = "off"

# autodoc
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
autosummary_generate = False  # apigen writes the pages; autosummary only draws the tables
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# HTML
html_theme = "furo"
html_title = f"{project} {release}"
html_static_path = ["_static"]
html_show_sourcelink = False

# Repository files outside docs/ that are pages of the site (docs/_ext/repolinks.py): links to
# them from the Markdown pages lead to the page.
repo_pages = {"images/README.md": "images"}
