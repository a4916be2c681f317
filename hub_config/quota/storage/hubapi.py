"""The few JupyterHub REST calls the quota service makes, with its own service token."""

from __future__ import annotations

import os
from urllib.parse import quote

import requests


class HubError(RuntimeError):
    pass


class HubClient:
    def __init__(self, api_url: str | None = None, token: str | None = None, timeout: float = 10):
        self.api_url = (api_url or os.environ.get("JUPYTERHUB_API_URL", "")).rstrip("/")
        self.token = token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not self.api_url or not self.token:
            raise HubError("no hub API: set JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"

    def _call(self, method: str, path: str, ok=(200, 201, 202, 204), **kw) -> requests.Response:
        r = self.http.request(method, self.api_url + path, timeout=self.timeout, **kw)
        if r.status_code not in ok:
            raise HubError(f"hub {method} {path}: {r.status_code} {r.text[:200]}")
        return r

    def users(self, active_only: bool = True) -> list[dict]:
        """Every user (paged), with their servers; ``state=active`` keeps it to running ones."""
        out, offset = [], 0
        for _ in range(10000):  # bounded: 10000 pages of 200
            params: dict[str, object] = {
                "offset": offset,
                "limit": 200,
                "include_stopped_servers": False,
            }
            if active_only:
                params["state"] = "active"
            r = self._call(
                "GET",
                "/users",
                params=params,
                headers={"Accept": "application/jupyterhub-pagination+json"},
            )
            body = r.json()
            items = body["items"] if isinstance(body, dict) else body
            out.extend(items)
            nxt = body.get("_pagination", {}).get("next") if isinstance(body, dict) else None
            if not nxt:
                break
            offset = nxt["offset"]
        return out

    def user(self, name: str) -> dict | None:
        r = self._call("GET", f"/users/{quote(name)}", ok=(200, 404))
        return r.json() if r.status_code == 200 else None

    def ensure_group(self, group: str) -> None:
        r = self._call("GET", f"/groups/{quote(group)}", ok=(200, 404))
        if r.status_code == 404:
            self._call("POST", f"/groups/{quote(group)}", ok=(201, 409), json={})

    def add_to_group(self, group: str, user: str) -> None:
        self.ensure_group(group)
        self._call("POST", f"/groups/{quote(group)}/users", json={"users": [user]})

    def remove_from_group(self, group: str, user: str) -> None:
        r = self._call("GET", f"/groups/{quote(group)}", ok=(200, 404))
        if r.status_code == 200 and user in r.json().get("users", []):
            self._call("DELETE", f"/groups/{quote(group)}/users", json={"users": [user]})

    def stop_server(self, user: str, server_name: str = "") -> None:
        path = (
            f"/users/{quote(user)}/servers/{quote(server_name)}"
            if server_name
            else f"/users/{quote(user)}/server"
        )
        self._call("DELETE", path, ok=(202, 204, 400, 404))

    def user_token(self, user: str, note: str, expires_in: int = 300) -> str:
        r = self._call(
            "POST", f"/users/{quote(user)}/tokens", json={"note": note, "expires_in": expires_in}
        )
        return r.json()["token"]
