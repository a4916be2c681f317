"""Links from the docs' Markdown to repository files that the site shows as pages of its own.

The pages in docs/ are read on GitHub too, where ``[Images](../images/README.md)`` is the right
link; on the site that file is the page ``images`` (which includes it). ``repo_pages`` in conf.py
maps such repository paths to their pages, and this rewrites those links as each source is read.
Any other link out of docs/ is left alone, so MyST still reports it when it is broken.
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx

_LINK = re.compile(r"\]\((?P<path>\.\./[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")


def rewrite(app: Sphinx, docname: str, source: list[str]) -> None:
    pages: dict[str, str] = app.config.repo_pages
    if not pages:
        return
    srcdir = Path(app.srcdir).resolve()
    repo = srcdir.parent
    here = (srcdir / docname).parent

    def sub(m: re.Match[str]) -> str:
        target = (here / m.group("path")).resolve()
        try:
            rel = target.relative_to(repo).as_posix()
        except ValueError:
            return m.group(0)
        page = pages.get(rel)
        if page is None:
            return m.group(0)
        rel_page = Path(page).relative_to(Path(docname).parent) if "/" in docname else page
        return f"]({rel_page}.md{m.group('anchor') or ''})"

    source[0] = _LINK.sub(sub, source[0])


def setup(app: Sphinx) -> dict:
    app.add_config_value("repo_pages", {}, "env", dict)
    app.connect("source-read", rewrite)
    return {"parallel_read_safe": True, "version": "1"}
