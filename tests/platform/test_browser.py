"""What a person sees: the login page in headless chromium, then their JupyterLab opens."""

from __future__ import annotations

import pytest


@pytest.mark.browser
@pytest.mark.slow
def test_login_page_leads_to_jupyterlab(start_platform, browser, web_login, docs_screenshot):
    platform = start_platform()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{platform.url}/")
        if not page.query_selector("input[name=password]"):
            page.goto(f"{platform.url}/hub/login")  # auto_login: on to the provider's form
        page.wait_for_selector("input[name=password]")
        docs_screenshot(page, "login-page")  # docs/getting-started.md
        # A wrong password keeps the user on the login page with a message.
        web_login.login(page, platform.url, "bob", "wrong-password")
        assert web_login.refused(page)
        # The right one spawns bob's server and opens JupyterLab in it.
        web_login.login(page, platform.url, "bob")
        page.wait_for_url(lambda url: "/user/bob/lab" in url or "/hub/spawn" in url)
        if "/hub/spawn" in page.url and page.locator("#spawn_form").count():
            # A tier with server options: take the offered defaults.
            page.click("#spawn_form [type=submit]")
        try:
            page.wait_for_url("**/user/bob/lab**", timeout=240_000)
            page.wait_for_selector("#jp-main-dock-panel")
        except Exception as exc:  # say where the browser got stuck, not only that it did
            text = page.inner_text("body")[:600] if page.locator("body").count() else ""
            raise AssertionError(f"JupyterLab did not open: at {page.url}: {text!r}") from exc
        assert page.title()
    finally:
        context.close()
    assert platform.stop() == 0
    assert not platform.leftovers(), platform.leftovers()
