"""The documentation site: built with Sphinx with warnings as errors, as ``make docs`` does.

The build runs once per session (about a minute on two cores) into a temporary folder; each
test then checks one promise of the site against the build and against the code it documents:
the guides' key pages, the API page of every public name of ``platform_lib.data``, a CLI
section (and every option) for each subcommand of the real parser, a page per tutorial, and
screenshots that exist and are taken by a browser test.
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urldefrag

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SCREENSHOTS = DOCS / "_static" / "screenshots"
SCREENSHOT_REF = re.compile(r"_static/screenshots/([A-Za-z0-9_.-]+\.png)")
SHOOT_CALL = re.compile(r"docs_screenshot\(\s*\w+,\s*\"([a-z0-9-]+)\"")


def subcommand_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every (path, subparser) below ``parser``: ("data",), ("data", "index"), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from subcommand_paths(sub, (*prefix, name))


def _ids(page: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page))


def _text(page: str) -> str:
    """The page's text, tags removed and whitespace collapsed (code is split into spans)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs-site")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d",
         str(out / ".doctrees"), str(DOCS), str(out / "html")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )  # fmt: skip
    print(f"docs site built in {time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, f"sphinx-build -W failed:\n{proc.stderr[-6000:]}"
    assert "WARNING" not in proc.stderr, proc.stderr[-6000:]
    return out / "html"


# --------------------------------------------------------------------------- no build needed
def test_every_screenshot_the_docs_show_exists_and_is_taken_by_a_browser_test():
    referenced = {
        name for page in DOCS.glob("*.md") for name in SCREENSHOT_REF.findall(page.read_text())
    }
    assert referenced, "the docs show no screenshot"
    on_disk = {p.name for p in SCREENSHOTS.glob("*.png")}
    assert referenced <= on_disk, f"missing screenshots: {sorted(referenced - on_disk)}"
    taken = {
        f"{name}.png"
        for test in (REPO / "tests").rglob("test_*.py")
        for name in SHOOT_CALL.findall(test.read_text())
    }
    assert referenced <= taken, f"not taken by any browser test: {sorted(referenced - taken)}"
    # `make screenshots` runs every test that takes one
    makefile = (REPO / "Makefile").read_text()
    for test in (REPO / "tests").rglob("test_*.py"):
        if SHOOT_CALL.search(test.read_text()):
            rel = test.relative_to(REPO).as_posix()
            assert rel in makefile, f"{rel} takes screenshots: add it to SCREENSHOT_TESTS"
    # nothing committed that no page shows and no test takes
    assert on_disk <= referenced | taken, (
        f"stray screenshots: {sorted(on_disk - referenced - taken)}"
    )
    for name in referenced:
        assert (SCREENSHOTS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_every_page_in_docs_is_in_the_navigation():
    """Sphinx -W fails on a page outside every toctree; this says which, without a build."""
    index = (DOCS / "index.md").read_text()
    blocks = re.findall(r"```\{toctree\}\n(.*?)```", index, flags=re.S)
    assert len(blocks) >= 5, "index.md: the guides' toctrees"
    listed = {
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.startswith(":")
    }
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    missing = sorted(pages - listed)
    assert not missing, f"docs pages in no toctree of docs/index.md (add them): {missing}"
    assert all((DOCS / f"{entry}.md").exists() or "/" in entry for entry in listed), listed


def test_subcommand_walk_finds_nested_commands():
    from platform_lib.cli import build_parser

    paths = [p for p, _ in subcommand_paths(build_parser())]
    assert ("data",) in paths and ("data", "search") in paths and ("quota", "set-cap") in paths
    assert len(paths) == len(set(paths))


# --------------------------------------------------------------------------- the built site
@pytest.mark.slow
def test_guides_have_their_key_pages(site: Path):
    for page in ("index", "getting-started", "tutorials", "team-admin", "operator-guide",
                 "local-platform", "kubernetes", "architecture", "api/index", "cli",
                 "config-reference"):  # fmt: skip
        assert (site / f"{page}.html").is_file(), page
    start = _text((site / "getting-started.html").read_text())
    for topic in ("Logging in", "Your tier", "Your allocation", "The status bar",
                  "Where the data are", "Where the compute is", "Your first tutorial"):  # fmt: skip
        assert topic in start, topic
    index = (site / "index.html").read_text()
    for caption in ("User guide", "Team-admin guide", "Operator guide", "Architecture"):
        assert caption in index, caption
    # the operator guide covers the three ways to run it
    ops = _text((site / "operator-guide.html").read_text())
    assert "kind or minikube" in ops and "Cloud production" in ops and "make up" in ops


@pytest.mark.slow
def test_screenshots_are_in_the_built_pages(site: Path):
    page = (site / "team-admin.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(images) >= 5, images
    for src in images:
        assert (site / src).is_file() and (site / src).stat().st_size > 1000, src


@pytest.mark.slow
def test_api_reference_documents_every_public_name_of_data(site: Path):
    import platform_lib.data as data

    page_path = site / "api" / "platform_lib.data.html"
    page = page_path.read_text()
    links = {
        html.unescape(text): href
        for href, text in re.findall(
            r'<a class="reference internal" href="([^"]+)" title="[^"]*"><code[^>]*>'
            r'<span class="pre">([^<]+)</span>',
            page,
        )
    }  # fmt: skip
    for name in data.__all__:
        obj = getattr(data, name)
        shown = getattr(obj, "__name__", name)  # an alias (open = open_product) shows its target
        assert shown in links, f"{name} not in the public-names table of {page_path.name}"
        target, anchor = urldefrag(links[shown])
        target_page = (page_path.parent / target).resolve()
        assert target_page.is_file(), links[shown]
        assert anchor in _ids(target_page.read_text()), f"{name}: no #{anchor} in {target}"
    # and each module of the package has its page
    for module in ("access", "index", "search", "store", "psf", "mast"):
        assert (site / "api" / f"platform_lib.data.{module}.html").is_file(), module


@pytest.mark.slow
def test_cli_reference_has_every_subcommand_and_option_of_the_parser(site: Path):
    from platform_lib.cli import build_parser

    parser = build_parser()
    page = (site / "cli.html").read_text()
    sections = [(m.start(), m.group(1)) for m in re.finditer(r'<section id="([^"]+)"', page)]
    paths = list(subcommand_paths(parser))
    assert len(paths) >= 20, paths  # up, data, simulate, calibrate, catalog, quota and theirs

    def options(p: argparse.ArgumentParser) -> list[str]:
        return [
            o
            for a in p._actions
            if not isinstance(a, argparse._HelpAction)  # sphinx-argparse leaves out -h
            for o in a.option_strings
        ]

    for path, sub in paths:
        command = "roman-platform " + " ".join(path)
        section = "roman-platform-" + "-".join(path)
        starts = [i for i, (_, sid) in enumerate(sections) if sid == section]
        assert starts, f"no section for '{command}'"
        begin = sections[starts[0]][0]
        # the section runs to the next one that is not its own (options, sub-commands)
        end = next(
            (
                pos
                for pos, sid in sections[starts[0] + 1 :]
                if sid.startswith("roman-platform-") and not sid.startswith(section + "-")
            ),
            len(page),
        )
        text = _text(page[begin:end])
        assert sub.description is None or " ".join(sub.description.split())[:40] in text, command
        for option in options(sub):
            assert option in text, f"{command}: {option} not in its section"
    text = _text(page)
    for option in options(parser):
        assert option in text, option


@pytest.mark.slow
def test_configuration_reference_lists_every_key_of_the_policy_and_the_quota_settings(site: Path):
    from pydantic import BaseModel

    from hub_config import policy
    from hub_config.quota import settings

    page = (site / "config-reference.html").read_text()
    ids = _ids(page)
    models = [
        obj
        for module in (policy, settings)
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseModel)
        and obj.__module__ == module.__name__
        and not obj.__name__.startswith("_")
    ]
    assert policy.Policy in models and settings.QuotaSettings in models
    for model in models:
        anchor = f"{model.__module__}.{model.__name__}"
        assert anchor in ids, f"{anchor} not in docs/config-reference.md"
        begin = page.index(f'id="{anchor}"')
        section = page[begin : page.find('<dl class="py', begin + 1)]
        for name, field in model.model_fields.items():
            key = field.alias or name
            assert f'<span class="pre">{key}</span>' in section, f"{anchor}: key {key} not shown"


@pytest.mark.slow
def test_every_tutorial_has_a_page(site: Path):
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert notebooks
    listing = (site / "tutorials.html").read_text()
    for nb in notebooks:
        assert (site / "tutorials" / f"{nb.stem}.html").is_file(), nb.name
        assert f"tutorials/{nb.stem}.html" in listing, nb.name
