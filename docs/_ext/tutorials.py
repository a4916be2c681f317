"""The tutorials of ``notebooks/`` as pages of the site.

Sphinx reads sources inside docs/ only, so each notebook is copied to ``docs/tutorials/``
(git-ignored) before the build reads it; a copy is rewritten only when the notebook changed, and
copies of notebooks that no longer exist are removed. The notebooks are rendered as committed
(``nb_execution_mode = "off"``): the test suite executes them in a real user server.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

log = logging.getLogger(__name__)
OUT = "tutorials"


def copy_notebooks(app: Sphinx) -> None:
    source = Path(app.srcdir).parent / "notebooks"
    out = Path(app.srcdir) / OUT
    out.mkdir(exist_ok=True)
    notebooks = sorted(source.glob("*.ipynb"))
    if not notebooks:
        raise RuntimeError(f"no notebooks in {source}: the tutorials page would be empty")
    names = {nb.name for nb in notebooks}
    for stale in out.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()
    for nb in notebooks:
        target = out / nb.name
        if not target.exists() or target.read_bytes() != nb.read_bytes():
            shutil.copyfile(nb, target)
    log.info("tutorials: %d notebooks from %s", len(notebooks), source)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", copy_notebooks)
    return {"parallel_read_safe": True, "version": "1"}
