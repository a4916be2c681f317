"""Headless Debian chromium: the demo Research user logs in through the provider and starts a
server from the profile form."""

from __future__ import annotations

import time

import pytest


@pytest.mark.browser
@pytest.mark.slow
def test_research_user_logs_in_and_starts_from_profile_form(stack, browser, docs_screenshot):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{stack.hub_url}/hub/login")
        page.click("text=Sign in with MyST")
        # The provider's login form (a different origin: the development OIDC provider).
        page.wait_for_selector("#username")
        assert page.url.startswith(stack.issuer)
        page.fill("#username", "research")
        page.fill("#password", "wrong-password")
        page.click("#login")
        page.wait_for_selector("text=Invalid username or password")
        page.fill("#username", "research")
        page.fill("#password", "research-demo")
        page.click("#login")
        page.wait_for_url(f"{stack.hub_url}/hub/**")
        page.goto(f"{stack.hub_url}/hub/spawn")
        assert page.inner_text("#roman-tier") == "Research"
        offered = page.eval_on_selector_all("input[name=profile]", "els => els.map(e => e.value)")
        assert offered == ["small", "medium"]
        # Issue 18: the environments, the current one chosen; the previous one is greyed out on
        # this local stack (one Python environment) and says why.
        envs = page.eval_on_selector_all(
            "input[name=environment]", "els => els.map(e => [e.value, e.checked, e.disabled])"
        )
        assert envs == [["2026.3", True, False], ["2026.2", False, True]]
        page.check("#profile-medium")
        docs_screenshot(page, "spawn-form")  # docs/getting-started.md
        page.click("#spawn_form button[type=submit]")
        page.wait_for_url(f"{stack.hub_url}/user/research/**", timeout=120_000)
        model = stack.api("GET", "/users/research").json()
        assert model["servers"][""]["user_options"] == {
            "profile": "medium",
            "environment": "2026.3",
        }
    finally:
        context.close()
        stack.api("DELETE", "/users/research/server")
        deadline = time.monotonic() + 60
        while (
            stack.api("GET", "/users/research").json().get("servers")
            and time.monotonic() < deadline
        ):
            time.sleep(0.5)
