"""The hub-facing TAP endpoint: a JupyterHub service that authenticates, in front of DaCHS.

Users never hold DaCHS credentials. A notebook sends its hub token (the server's
``JUPYTERHUB_API_TOKEN``, or a token from the hub's token page) to ``/services/tap/``; this
service asks the hub who the token belongs to (``jupyterhub.services.auth.HubAuth``: the user's
name, hub groups and admin flag, and whether the token may reach this service), keeps the user's
DaCHS account in step with the user's ``team-<name>`` groups (:meth:`TapService.grant`) and
forwards the TAP request to DaCHS as that user (HTTP basic auth with the password only the
platform can derive). What a query returns is then decided by PostgreSQL's row-level security
(see :mod:`hub_config.tap.service`), whatever the ADQL says.

* No credentials: forwarded anonymously, so the answer holds public rows only (the public tier of
  a VO archive). Any ``Authorization`` a client sends is removed before DaCHS sees it.
* A token the hub does not accept, or one without ``access:services!service=tap``: 401/403 with
  the reason, never a silent fall-back to public rows.
* Asynchronous jobs (UWS, pyvo's ``run_async``/``submit_job``) are DaCHS's: a job made with the
  user's credentials is owned by the user, runs as the user (``dachs_serve.py``) and is readable
  by nobody else. The job *list* is the user's own; an anonymous client may not list jobs
  (DaCHS would list everyone's job ids), only reach its own by their URLs. DaCHS runs a few jobs
  at once for everybody (``maxTAPRunning``), so a user may hold at most ``ROMAN_TAP_USER_JOBS``
  unfinished jobs (pending, queued, running; default :data:`USER_JOBS`): one more is refused
  with 429 naming them, so nobody fills the queue for the others.
* Only the TAP endpoints are exposed (sync, async, capabilities, tables, availability, examples);
  DaCHS's other pages (forms, admin) are not reachable through the hub.
* ``POST roman/l5`` registers an L5 product's ObsCore row with the *authenticated* user as owner
  (a row naming another owner, a team the user is not in, or a path outside the user's or the
  team's space is refused); ``POST roman/l5/remove`` removes one (its owner, or a hub admin).

``python -m hub_config.tap.proxy`` runs it (the hub starts it as a managed service on one
machine, the chart in a pod of its own); the hub's service environment gives
``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_SERVICE_PREFIX`` and
``JUPYTERHUB_SERVICE_URL``; ``ROMAN_TAP_ROOT``/``ROMAN_TAP_PORT``/``ROMAN_TAP_PG_PORT`` and
``ROMAN_TAP_SECRET`` name the DaCHS instance (:meth:`hub_config.tap.service.TapService.proxy_env`);
in the chart, ``ROMAN_TAP_DACHS_URL`` and ``ROMAN_TAP_PG_URL`` + ``ROMAN_TAP_PG_PASSWORD`` do
(:func:`hub_config.tap.cluster.attach_from_env`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

from tornado import httpclient, web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from hub_config.policy import TEAM_GROUP_PREFIX
from platform_lib import env_contract

from .schema import TapError
from .service import TapService

log = logging.getLogger("roman_platform.tap_proxy")

#: the TAP resources (IVOA TAP 1.1 and VOSI) forwarded to DaCHS; anything else is 404
TAP_PATHS = re.compile(r"^(|sync|async(/.*)?|capabilities|tables(/.*)?|availability|examples)$")
#: how long a user's team set is trusted before the hub is asked again (HubAuth's cache)
CACHE_SECONDS = 60
#: unfinished async jobs one user may hold (pending, queued or executing)
USER_JOBS = 2
UNFINISHED = ("PENDING", "QUEUED", "EXECUTING", "SUSPENDED", "HELD")
FORWARDED_HEADERS = ("Content-Type", "Accept")  # bodies come back plain, so they can be rewritten


def teams_of(groups: list[str]) -> set[str]:
    """The platform teams in a user's hub groups (``team-<t>``; ``team-<t>-admins`` is not one)."""
    names = {g[len(TEAM_GROUP_PREFIX) :] for g in groups if g.startswith(TEAM_GROUP_PREFIX)}
    return {t for t in names if not (t.endswith("-admins") and t[: -len("-admins")] in names)}


class _Handler(web.RequestHandler):
    @property
    def app(self) -> TapProxy:
        return self.settings["tap_proxy"]

    def write_error(self, status_code: int, **kw: Any) -> None:
        reason = self._reason
        exc = kw.get("exc_info", (None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            reason = exc.log_message
        self.set_header("Content-Type", "application/json")
        if status_code == 429:  # pyvo's DALRateLimitError reads it
            self.set_header("Retry-After", "30")
        self.finish(json.dumps({"status": status_code, "message": reason}))

    def _token(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        kind, _, value = header.partition(" ")
        if kind.lower() in ("token", "bearer") and value.strip():
            return value.strip()
        if kind.lower() == "basic" and value.strip():
            # TOPCAT and other VO clients speak basic auth: user name + hub token as password
            try:
                _, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                raise web.HTTPError(400, "malformed basic authorization header") from None
            return password or None
        return None

    async def identity(self) -> dict[str, Any] | None:
        """The hub's user model for the request's token; None without one; 401/403 if refused."""
        token = self._token()
        if token is None:
            return None
        auth = self.app.hub_auth
        model = await auth.user_for_token(token, use_cache=self.app.account_seconds > 0, sync=False)
        if not model or model.get("kind", "user") != "user":
            raise web.HTTPError(401, "the hub does not accept this token (expired or revoked?)")
        log.debug("%s: token scopes %s", model["name"], model.get("scopes"))
        if not auth.check_scopes(auth.access_scopes, model):
            raise web.HTTPError(
                403, f"this token may not use the TAP service (needs {sorted(auth.access_scopes)})"
            )
        if "groups" not in model:
            raise web.HTTPError(
                403, "this token may not read its user's groups (needs read:users:groups!user)"
            )
        await self.app.ensure_account(model["name"], teams_of(model["groups"]))
        return model


class TapForwardHandler(_Handler):
    """Everything under the service prefix that is a TAP resource goes to DaCHS as the user."""

    async def _forward(self, rest: str) -> None:
        if not TAP_PATHS.match(rest):
            raise web.HTTPError(404, f"not a TAP resource: {rest!r}")
        user = await self.identity()
        job_list = rest.rstrip("/") == "async"  # GET: the list; POST: a new job
        if user is None and job_list and self.request.method == "GET":
            raise web.HTTPError(
                401,
                "listing TAP jobs needs a hub token (the list is the user's own); an anonymous "
                "job is reached by the URL its creation returned",
            )
        headers = {
            h: self.request.headers[h] for h in FORWARDED_HEADERS if h in self.request.headers
        }
        if user is not None:
            pair = f"{user['name']}:{self.app.tap.password_for(user['name'])}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        if user is not None and job_list and self.request.method == "POST":
            await self._check_job_allowance(user["name"], headers["Authorization"])
        url = f"{self.app.tap.url}/{rest}" if rest else self.app.tap.url
        if self.request.query:
            url += "?" + self.request.query
        body = self.request.body if self.request.method == "POST" else None
        try:
            resp = await httpclient.AsyncHTTPClient().fetch(
                url,
                method=self.request.method,
                headers=headers,
                body=body,
                follow_redirects=False,
                raise_error=False,
                request_timeout=self.app.timeout,
            )
        except (OSError, httpclient.HTTPClientError) as exc:
            raise web.HTTPError(502, f"the TAP server did not answer: {exc}") from None
        if resp.code == 599:
            raise web.HTTPError(502, f"the TAP server did not answer: {resp.error}")
        self.set_status(resp.code, resp.reason)
        for name in ("Content-Type", "Location", "Retry-After"):
            if name in resp.headers:
                self.set_header(name, self.app.public(resp.headers[name]))
        data = resp.body or b""
        ctype = resp.headers.get("Content-Type", "")
        if "xml" in ctype:
            # VOSI capabilities and job documents name DaCHS's own address
            data = self.app.public(data.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            )
        self.finish(data)

    async def _check_job_allowance(self, name: str, authorization: str) -> None:
        """429 if the user already holds the allowed number of unfinished async jobs."""
        from xml.etree import ElementTree

        try:
            resp = await httpclient.AsyncHTTPClient().fetch(
                f"{self.app.tap.url}/async",
                headers={"Authorization": authorization},
                request_timeout=30,
            )
            jobs = ElementTree.fromstring(resp.body)
        except (OSError, httpclient.HTTPClientError, ElementTree.ParseError) as exc:
            raise web.HTTPError(502, f"the TAP server's job list: {exc}") from None
        unfinished = [
            ref.get("id", "?")
            for ref in jobs
            if ref.tag.endswith("jobref")
            and any(p.tag.endswith("phase") and p.text in UNFINISHED for p in ref)
        ]
        if len(unfinished) >= self.app.user_jobs:
            raise web.HTTPError(
                429,
                f"{name} already has {len(unfinished)} unfinished TAP jobs (the limit is "
                f"{self.app.user_jobs}): wait for them or delete one ({', '.join(unfinished)})",
            )

    async def get(self, rest: str) -> None:
        await self._forward(rest)

    async def post(self, rest: str) -> None:
        await self._forward(rest)

    async def delete(self, rest: str) -> None:
        await self._forward(rest)


class L5Handler(_Handler):
    """Register (POST roman/l5) or remove (POST roman/l5/remove) an L5 product's ObsCore row."""

    async def post(self, action: str) -> None:
        user = await self.identity()
        if user is None:
            raise web.HTTPError(401, "publishing needs a hub token (Authorization: token ...)")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the request body must be a JSON object")
        name = user["name"]
        if action == "remove":
            did = body.get("obs_publisher_did")
            if not isinstance(did, str) or not did:
                raise web.HTTPError(400, "remove needs obs_publisher_did")
            try:
                await asyncio.to_thread(
                    self.app.tap.remove_product,
                    did,
                    by=name,
                    admin=bool(user.get("admin")),
                    reason=str(body.get("reason", ""))[:500],
                )
            except TapError as exc:
                msg = str(exc)
                raise web.HTTPError(
                    404 if msg.startswith("no product") else 403, msg.replace("%", "%%")
                ) from None
            self.finish({"removed": did, "by": name})
            return
        row = self.app.checked_row(body.get("row"), name, teams_of(user["groups"]))
        try:
            await asyncio.to_thread(self.app.tap.add_product, row)
        except TapError as exc:
            raise web.HTTPError(409, str(exc).replace("%", "%%")) from None
        self.set_status(201)
        self.finish({"registered": row["obs_publisher_did"], "owner_name": name})


class TapProxy:
    """The service: a ``TapService`` (the DaCHS instance, already running) behind ``HubAuth``."""

    def __init__(
        self,
        tap: TapService,
        *,
        prefix: str = "/services/tap/",
        public_url: str | None = None,
        hub_auth: Any = None,
        timeout: float = 300.0,
    ) -> None:
        from jupyterhub.services.auth import HubAuth

        self.tap = tap
        self.prefix = "/" + prefix.strip("/") + "/"
        self.public_url = (public_url or self.prefix).rstrip("/")
        self.timeout = timeout
        self.hub_auth = hub_auth or HubAuth(cache_max_age=CACHE_SECONDS)
        service = os.environ.get("JUPYTERHUB_SERVICE_NAME", "tap")
        if not self.hub_auth.access_scopes:
            self.hub_auth.access_scopes = {f"access:services!service={service}"}
        self.account_seconds = CACHE_SECONDS
        self.user_jobs = USER_JOBS
        self._accounts: dict[str, tuple[frozenset[str], float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def public(self, value: str) -> str:
        """DaCHS's own addresses (the TAP base and its ``__system__/tap/run`` resources) → ours."""
        server = self.tap.url.removesuffix("/tap")
        for theirs, ours in (
            (f"{server}/__system__/tap/run/tableMetadata", f"{self.public_url}/tables"),
            (f"{server}/__system__/tap/run", self.public_url),
            (self.tap.url, self.public_url),
        ):
            value = value.replace(theirs, ours)
        return value

    async def ensure_account(self, user: str, teams: set[str]) -> None:
        """The user's DaCHS account with exactly ``teams`` (re-granted when they change)."""
        key = frozenset(teams)
        # one grant at a time per user: two first requests at once would both re-create the
        # account, and the second insert would collide with the first
        async with self._locks.setdefault(user, asyncio.Lock()):
            known = self._accounts.get(user)
            if known and known[0] == key and time.monotonic() - known[1] < self.account_seconds:
                return
            try:
                await asyncio.to_thread(self.tap.grant, user, sorted(teams))
            except TapError as exc:
                raise web.HTTPError(403, str(exc).replace("%", "%%")) from None
            self._accounts[user] = (key, time.monotonic())

    def checked_row(self, row: Any, user: str, teams: set[str]) -> dict[str, Any]:
        """An L5 ObsCore row a client sent, owned by ``user``; refuses what it may not claim."""
        from platform_lib.data.l5 import VISIBILITIES, did
        from platform_lib.data.obscore import OBSCORE_COLUMNS

        if not isinstance(row, dict):
            raise web.HTTPError(400, "register needs row: an ObsCore row (a JSON object)")
        unknown = sorted(set(row) - set(OBSCORE_COLUMNS))
        if unknown:
            raise web.HTTPError(400, f"unknown ObsCore columns: {unknown}")
        if row.get("roman_level") != "L5":
            raise web.HTTPError(403, "only L5 (community) products can be registered by users")
        claimed = row.get("owner_name")
        if claimed not in (None, "", user):
            raise web.HTTPError(
                403, f"the owner is the authenticated user ({user}); {claimed!r} cannot be claimed"
            )
        visibility, team = row.get("visibility"), row.get("team")
        if visibility not in VISIBILITIES:
            raise web.HTTPError(400, f"visibility must be one of {VISIBILITIES}")
        if visibility == "team" and not team:
            raise web.HTTPError(400, "a team product needs its team")
        if team and team not in teams:
            raise web.HTTPError(403, f"{user} is not a member of team {team!r}")
        path = row.get("product_path")
        if not isinstance(path, str) or "/l5/" not in path:
            raise web.HTTPError(400, "product_path must be the product's URL in an l5/ folder")
        space = urlsplit(path).path.rstrip("/").split("/l5/")[0].rsplit("/", 1)[-1]
        if space != (team if visibility == "team" else user):
            raise web.HTTPError(
                403,
                f"{path} is not in {user}'s own space"
                + (f" or team {team}'s space" if team else ""),
            )
        if row.get("obs_publisher_did") != did(path):
            raise web.HTTPError(400, "obs_publisher_did must be the product's DID (l5.did(url))")
        return {**row, "owner_name": user, "team": team if visibility == "team" else None}

    def make_app(self) -> web.Application:
        p = re.escape(self.prefix)
        return web.Application(
            [
                (rf"{p}roman/l5(?:/(remove))?", L5Handler),
                (rf"{p}?(.*)", TapForwardHandler),
            ],
            tap_proxy=self,
        )


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    from .cluster import attach_from_env

    try:
        tap = attach_from_env()
    except TapError as exc:
        raise SystemExit(f"tap proxy: {exc}") from None
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/tap/")
    public = os.environ.get(env_contract.TAP_PUBLIC_URL) or prefix
    from jupyterhub.services.auth import HubAuth

    cache = int(os.environ.get(env_contract.TAP_CACHE_SECONDS, CACHE_SECONDS))
    proxy = TapProxy(
        tap, prefix=prefix, public_url=public, hub_auth=HubAuth(cache_max_age=max(cache, 1))
    )
    proxy.account_seconds = cache
    proxy.user_jobs = int(os.environ.get(env_contract.TAP_USER_JOBS, USER_JOBS))
    bind = urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8190"))
    HTTPServer(proxy.make_app(), xheaders=True).listen(bind.port or 80, bind.hostname)
    log.info("TAP proxy on %s for %s (%s)", bind.geturl(), tap.url, prefix)
    IOLoop.current().start()


if __name__ == "__main__":
    main()
