"""A Jupyter server extension: your allocation at ``<server>/roman/account`` (page and JSON).

The in-Lab view of :mod:`platform_lib.account`: tier, remaining core-hours, the renewal date and
any exhaustion warning, with a link to the quota service. It asks the quota service with the
server's own hub token, so it shows exactly what the service lets this user see.

Enabled by ``platform_lib/jupyter-config`` on ``JUPYTER_CONFIG_PATH`` (the hub sets it for local
servers; the notebook image installs the same file).
"""

from __future__ import annotations

import asyncio
import html
import json
import os

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .account import AccountError, account
from .env_contract import QUOTA_PUBLIC_URL, QUOTA_URL

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>My allocation</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5em}}.warn{{background:#fff3cd;padding:.5em}}</style>
</head><body><h1>My allocation</h1>
<p id="roman-account-summary">{summary}</p>{warnings}
<table><tr><th>tier</th><td id="roman-tier">{tier}</td></tr>
<tr><th>core-hours left</th><td id="roman-remaining">{remaining}</td></tr>
<tr><th>renews</th><td id="roman-renewal">{renewal}</td></tr></table>
<p><a href="{service}" target="_blank" rel="noopener">Open the allocation service</a></p></body></html>"""


class AccountHandler(JupyterHandler):
    @web.authenticated
    async def get(self, fmt: str = "") -> None:
        try:
            a = await asyncio.get_running_loop().run_in_executor(None, account)
        except AccountError as exc:
            self.set_status(exc.status if exc.status >= 400 else 502)
            self.finish(
                {"error": str(exc)}
                if fmt
                else f"<p>Allocation unavailable: {html.escape(str(exc))}</p>"
            )
            return
        if fmt:
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps(
                    {
                        "name": a.name,
                        "tier": a.tier,
                        "remaining_core_hours": a.remaining_core_hours,
                        "remaining_gpu_hours": a.remaining_gpu_hours,
                        "renewal_date": a.renewal_date.isoformat() if a.renewal_date else None,
                        "teams": [t["name"] for t in a.teams],
                        "warnings": a.warnings,
                        "summary": a.summary(),
                        "service_url": _public_service_url(),
                    }
                )
            )
            return
        self.finish(
            PAGE.format(
                summary=html.escape(a.summary()),
                tier=html.escape(a.tier),
                remaining="—"
                if a.remaining_core_hours is None
                else f"{a.remaining_core_hours:.2f}",
                renewal=a.renewal_date.strftime("%Y-%m-%d") if a.renewal_date else "—",
                warnings="".join(f'<p class="warn">{html.escape(w)}</p>' for w in a.warnings),
                service=html.escape(_public_service_url()),
            )
        )


def _public_service_url() -> str:
    """The quota service as the user's browser opens it: in the chart the server reaches it by an
    in-cluster name the browser cannot resolve, so the hub also sets ROMAN_QUOTA_PUBLIC_URL."""
    return os.environ.get(QUOTA_PUBLIC_URL) or os.environ.get(QUOTA_URL, "")


def _load_jupyter_server_extension(serverapp) -> None:
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "roman/account(\\.json)?"), AccountHandler),
        ],
    )


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "platform_lib.account_extension"}]
