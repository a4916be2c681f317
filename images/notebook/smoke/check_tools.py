"""Checks that the JupyterLab tools users of STScI's Roman Research Nexus expect load and work.

Run inside the notebook image (tests/images) and in the development environment that the local
platform's user servers run (tests/notebooks). Each check does what a user does first with the
tool, not just an import:

- ipympl: a figure on the widget backend is a live canvas widget that renders a PNG;
- jdaviz: its App (jdaviz 5's successor of Imviz; no browser needed) loads a Roman-like image
  with a celestial WCS and hands back the sky position of a pixel;
- the server extensions (jupyterlab-git, jupyter-resource-usage, jupyter-collaboration,
  nbgitpuller) are enabled, and the lab extensions they ship are installed and enabled;
- pyvo, astroquery's MAST interface, lsdb and hats import.

Prints one JSON object with a line per check; exits 1 and names each failure otherwise.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import traceback
from collections.abc import Callable

# jupyter-collaboration's server side is the jupyter_server_ydoc package
SERVER_EXTENSIONS = [
    "jupyterlab_git",
    "jupyter_resource_usage",
    "jupyter_server_ydoc",
    "nbgitpuller",
]
LAB_EXTENSIONS = [
    "@jupyterlab/git",
    "@jupyter-server/resource-usage",
    "@jupyter/collaboration-extension",
    "jupyter-matplotlib",
]


def check_ipympl() -> str:
    import matplotlib

    matplotlib.use("module://ipympl.backend_nbagg")
    import matplotlib.pyplot as plt
    from ipympl.backend_nbagg import Canvas

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [2, 1, 3])
    if not isinstance(fig.canvas, Canvas):
        raise AssertionError(f"canvas is {type(fig.canvas).__name__}, not ipympl's Canvas")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    if not buf.getvalue().startswith(b"\x89PNG"):
        raise AssertionError("the widget figure rendered no PNG")
    if fig.canvas._model_name != "MPLCanvasModel":
        raise AssertionError(f"the canvas widget's model is {fig.canvas._model_name}")
    plt.close(fig)
    return f"{fig.canvas._model_name} widget, {len(buf.getvalue())} B PNG"


def check_jdaviz() -> str:
    import numpy as np
    from astropy.nddata import NDData
    from astropy.wcs import WCS
    from jdaviz import App

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [270.0, 66.0]
    w.wcs.crpix = [32.5, 32.5]
    w.wcs.cdelt = [-0.11 / 3600, 0.11 / 3600]  # WFI's 0.11" pixels
    data = np.random.default_rng(1).normal(1.0, 0.1, (64, 64)).astype("float32")
    app = App()
    app.load(NDData(data, wcs=w), data_label="wfi_cutout")
    labels = list(app.datasets)
    if not any("wfi_cutout" in lab for lab in labels):
        raise AssertionError(f"jdaviz holds {labels}, not the loaded image")
    sky = app.get_data(labels[0]).wcs.pixel_to_world(31.5, 31.5)
    if abs(sky.ra.deg - 270.0) > 1e-6 or abs(sky.dec.deg - 66.0) > 1e-6:
        raise AssertionError(f"jdaviz's WCS puts the reference pixel at {sky}")
    return f"loaded {labels[0]!r}, reference pixel at RA {sky.ra.deg:.4f} Dec {sky.dec.deg:.4f}"


def _jupyter(*args: str) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120
    )
    return p.stdout + p.stderr


def _enabled(listing: str, name: str) -> bool:
    return any(
        name in line and "enabled" in line and "disabled" not in line
        for line in listing.splitlines()
    )


def check_server_extensions() -> str:
    listing = _jupyter("server", "extension", "list")
    missing = [n for n in SERVER_EXTENSIONS if not _enabled(listing, n)]
    if missing:
        raise AssertionError(f"server extensions not enabled: {missing}\n{listing}")
    return ", ".join(SERVER_EXTENSIONS)


def check_lab_extensions() -> str:
    listing = _jupyter("labextension", "list")
    missing = [n for n in LAB_EXTENSIONS if not _enabled(listing, n)]
    if missing:
        raise AssertionError(f"lab extensions not enabled: {missing}\n{listing}")
    return ", ".join(LAB_EXTENSIONS)


def check_imports() -> str:
    import hats
    import lsdb
    import pyvo
    from astroquery.mast import Observations

    return f"pyvo {pyvo.__version__}, lsdb {lsdb.__version__}, hats {hats.__version__}, {Observations.__class__.__name__}"


CHECKS: dict[str, Callable[[], str]] = {
    "ipympl": check_ipympl,
    "jdaviz": check_jdaviz,
    "server_extensions": check_server_extensions,
    "lab_extensions": check_lab_extensions,
    "imports": check_imports,
}


def main() -> int:
    results, failures = {}, {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception:
            failures[name] = traceback.format_exc(limit=4)
    for name, tb in failures.items():
        print(f"FAILED {name}:\n{tb}", file=sys.stderr)
    print(json.dumps({"ok": results, "failed": sorted(failures)}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
