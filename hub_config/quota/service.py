"""The quota service: a JupyterHub service (HubOAuth) with pages and a JSON API.

Every handler turns the hub login into an :class:`operations.Actor` (platform admin = hub admin,
or member of the configured admin group, or holder of the ``custom:quota:admin`` scope) and calls
:mod:`operations`, which decides on the server side what the actor may do. Changes and their
audit entries commit in one transaction; hub group updates (tiers, teams) are applied before the
commit, so a hub failure leaves the database unchanged too.

Run by the hub (see :mod:`hub_config.quota.hub`) as ``python -m hub_config.quota.service``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from pydantic import BaseModel, ValidationError
from tornado import ioloop, web
from tornado.httpserver import HTTPServer

from hub_config.quota.errors import BadInput, QuotaError
from hub_config.quota.handlers import schemas
from hub_config.quota.handlers.plot import usage_svg
from hub_config.quota.services import operations as ops
from hub_config.quota.settings import QuotaSettings, load_settings
from hub_config.quota.storage.db import session_factory
from hub_config.quota.storage.models import AuditEntry, Request, RequestState, utcnow

log = logging.getLogger("quota")
ADMIN_SCOPE = "custom:quota:admin"
MAX_BODY = 64 * 1024  # no legitimate call comes near this; bigger ones get a 400, not a reset
TEMPLATES = Path(__file__).resolve().parent / "handlers" / "templates"


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    api = False

    def check_xsrf_cookie(self):
        # Token-authenticated calls (CLI, notebooks) carry no ambient credential: identify the
        # token first so the hub mixin exempts them; cookie calls still need the _xsrf token.
        # Only when no identification is under way: the hub mixin calls this method again from
        # inside its own (blocking, one-thread) lookup when the header's token is not valid and
        # a cookie is present, and asking for current_user there waited on that same thread
        # forever, with the service's event loop blocked behind it (issue 20, attack 2).
        if self.request.headers.get("Authorization") and not hasattr(self, "_cached_hub_user"):
            _ = self.current_user
        return super().check_xsrf_cookie()

    @property
    def q(self) -> QuotaApp:
        return self.settings["quota"]

    def actor(self) -> ops.Actor:
        model = self.current_user
        if not model:
            raise web.HTTPError(403, "not logged in")
        name = model["name"]
        info = self.q.hub_user(name) or {}
        groups = set(info.get("groups") or model.get("groups") or [])
        admin = (
            bool(info.get("admin"))
            or self.q.settings.admin_group in groups
            or ADMIN_SCOPE in set(model.get("scopes") or [])
        )
        from hub_config.policy import load_policy

        tier = load_policy().tier_of_groups(groups) if info else None
        if info and name not in self.q.synced:
            self.q.sync_idp_teams(name, groups)
        return ops.Actor(name=name, platform_admin=admin, hub_tier=tier)

    def body(self, model: type[BaseModel]) -> BaseModel:
        if self.api:
            try:
                data = json.loads(self.request.body or b"{}")
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadInput(f"malformed JSON: {exc}") from None
            if not isinstance(data, dict):
                raise BadInput("the body must be a JSON object")
        else:
            data = {
                k: self.get_body_argument(k) for k in self.request.body_arguments if k != "_xsrf"
            }
            data = {k: (None if v == "" else v) for k, v in data.items()}
            if "approve" in data:
                data["approve"] = data["approve"] in ("1", "true", "yes", "on")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            reasons = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise BadInput(reasons) from None

    def known_user(self, s, name: str) -> str:
        """Users must exist (in the quota DB or the hub) before anything refers to them."""
        ops.check_username(name)
        from sqlalchemy import select

        from hub_config.quota.storage.models import User

        if s.scalars(select(User).where(User.name == name)).first() is None:
            if self.q.hub_user(name, fresh=True) is None:
                raise BadInput(f"unknown user {name!r}")
            ops.user(s, name, create=True)
        return name

    def apply(self, changes: ops.Changes) -> None:
        if self.q.hub is None:
            return
        for group, user in changes.remove_groups:
            self.q.hub.remove_from_group(group, user)
        for group, user in changes.add_groups:
            self.q.hub.add_to_group(group, user)
        for _, user in changes.add_groups + changes.remove_groups:
            self.q.forget(user)

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None))[1]
        reason = (
            str(exc)
            if isinstance(exc, QuotaError)
            else (
                exc.log_message
                if isinstance(exc, web.HTTPError) and exc.log_message
                else self._reason
            )
        )
        if self.api or not self.current_user:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status_code, "reason": reason}))
        else:
            self.finish(
                self.render_string(
                    "error.html",
                    status=status_code,
                    reason=reason,
                    prefix=self.q.prefix,
                    back=self.q.prefix,
                )
            )

    def _handle_request_exception(self, e):
        if isinstance(e, QuotaError):
            self.send_error(e.status, exc_info=(type(e), e, None))
            return
        super()._handle_request_exception(e)

    def json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))


class ApiHandler(BaseHandler):
    api = True

    def prepare(self):
        if len(self.request.body or b"") > MAX_BODY:
            raise BadInput(f"request body larger than {MAX_BODY // 1024} KiB")
        if not self.current_user:
            raise web.HTTPError(403, "authentication required (hub token or login)")


def _tx(method):
    """Run an operation in a transaction: commit on success, roll back on any error."""

    def wrapper(self, *args, **kwargs):
        with self.q.sessions() as s:
            try:
                out = method(self, s, *args, **kwargs)
                s.commit()
                return out
            except Exception:
                s.rollback()
                raise

    wrapper.__doc__ = method.__doc__
    return wrapper


# --------------------------------------------------------------------------- API
class MeAPI(ApiHandler):
    @_tx
    def get(self, s):
        """My tier, teams, allocation, usage this period, profile costs, requests and warnings."""
        self.json(ops.me(s, self.actor(), self.q.settings))


class CostsAPI(ApiHandler):
    def get(self):
        """What each profile costs per hour (cores and GPUs it reserves)."""
        self.json(ops.profile_costs())


class TeamsAPI(ApiHandler):
    @_tx
    def post(self, s):
        """Create a team (platform admins)."""
        b = self.body(schemas.TeamIn)
        t = ops.create_team(s, self.actor(), b.name, b.description)
        self.json({"name": t.name, "description": t.description}, 201)


class TeamAPI(ApiHandler):
    @_tx
    def get(self, s, team):
        """A team: allocation and usage; members, caps and usage per member for its admins."""
        self.json(ops.team_view(s, self.actor(), team))


class MembersAPI(ApiHandler):
    @_tx
    def post(self, s, team):
        """Add a member (platform admins), or invite one (team admins: 202, the user accepts)."""
        b = self.body(schemas.MemberIn)
        actor = self.actor()
        ops.require_team_admin(s, actor, ops.team(s, team))
        self.known_user(s, b.username)
        changes = ops.Changes()
        out = ops.add_member(s, actor, team, b.username, b.role, changes)
        self.apply(changes)
        self.json(out, 202 if "invited" in out else 201)  # 202: an invitation the user decides


class MemberAPI(ApiHandler):
    @_tx
    def delete(self, s, team, username):
        """Remove a member."""
        changes = ops.Changes()
        ops.remove_member(s, self.actor(), team, username, changes)
        self.apply(changes)
        self.json({"removed": username})


class CapAPI(ApiHandler):
    @_tx
    def put(self, s, team, username):
        """Set a member's caps inside the team allocation (null = no cap)."""
        b = self.body(schemas.CapIn)
        self.json(ops.set_cap(s, self.actor(), team, username, b.core_hours, b.gpu_hours))


class AllocationsAPI(ApiHandler):
    @_tx
    def post(self, s):
        """Create an allocation for a user or a team (platform admins)."""
        b = self.body(schemas.AllocationIn)
        actor = self.actor()
        ops.require_admin(actor)
        if b.user:
            self.known_user(s, b.user)
        a = ops.create_allocation(
            s,
            actor,
            user_name=b.user,
            team_name=b.team,
            core_hours=b.core_hours,
            gpu_hours=b.gpu_hours,
            home_gb=b.home_gb,
            scratch_gb=b.scratch_gb,
            period_start=b.period_start,
            period_end=b.period_end,
        )
        self.json(ops.allocation_dict(s, a), 201)


class TierAPI(ApiHandler):
    @_tx
    def put(self, s, username):
        """Grant a tier (platform admins); updates the user's tier-<name> hub group."""
        b = self.body(schemas.GrantIn)
        actor = self.actor()
        ops.require_admin(actor)
        self.known_user(s, username)
        changes = ops.Changes()
        out = ops.grant_tier(s, actor, username, b.tier, b.expires_at, changes)
        self.apply(changes)
        self.json(out)

    @_tx
    def delete(self, s, username):
        """Revoke a user's tier grant; they fall back to the default tier."""
        changes = ops.Changes()
        ops.revoke_tier(s, self.actor(), username, changes)
        self.apply(changes)
        self.json({"revoked": username})


class RequestsAPI(ApiHandler):
    @_tx
    def get(self, s):
        """Pending requests (platform admins) or my own requests."""
        from sqlalchemy import select

        actor = self.actor()
        q = select(Request).order_by(Request.created.desc()).limit(500)
        if actor.platform_admin:
            q = q.where(Request.state == RequestState.pending)
        else:
            q = q.where(Request.requester == actor.name)
        self.json([ops.request_dict(r) for r in s.scalars(q)])

    @_tx
    def post(self, s):
        """Request a tier, a renewal or to join a team, with a justification."""
        b = self.body(schemas.RequestIn)
        r = ops.create_request(s, self.actor(), b.kind, b.justification, b.tier, b.team)
        self.json(ops.request_dict(r), 201)


class DecisionAPI(ApiHandler):
    @_tx
    def post(self, s, request_id):
        """Approve or decline a request (platform admins; a team's admins for joins; the
        invitee for an invitation)."""
        b = self.body(schemas.DecisionIn)
        changes = ops.Changes()
        out = ops.decide_request(s, self.actor(), int(request_id), b.approve, b.note, changes)
        self.apply(changes)
        self.json(out)


def _period_args(handler) -> tuple[dt.datetime, dt.datetime]:
    now = utcnow()
    start = ops._when(handler.get_argument("start", None), "start") or now - dt.timedelta(days=31)
    end = ops._when(handler.get_argument("end", None), "end") or now + dt.timedelta(hours=1)
    if end <= start:
        raise BadInput("end must be after start")
    return start, end


class UsageAPI(ApiHandler):
    @_tx
    def get(self, s):
        """Usage per user and team between start and end (platform admins)."""
        start, end = _period_args(self)
        self.json(ops.all_usage(s, self.actor(), start, end))


class UsageCSV(BaseHandler):
    @web.authenticated
    @_tx
    def get(self, s):
        """All usage as CSV (platform admins)."""
        start, end = _period_args(self)
        rows = ops.all_usage(s, self.actor(), start, end)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["user", "team", "core_hours", "gpu_hours"])
        w.writeheader()
        w.writerows(rows)
        self.set_header("Content-Type", "text/csv")
        self.set_header("Content-Disposition", "attachment; filename=usage.csv")
        self.finish(buf.getvalue())


class AuditAPI(ApiHandler):
    @_tx
    def get(self, s):
        """The newest audit entries (platform admins)."""
        from sqlalchemy import select

        ops.require_admin(self.actor())
        limit = min(int(self.get_argument("limit", "200") or 200), 5000)
        self.json(
            [
                {
                    "at": ops.iso(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "before": e.before,
                    "after": e.after,
                }
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
            ]
        )


class SpawnCheckAPI(ApiHandler):
    @_tx
    def post(self, s):
        """Would a server with this profile (charged to this team) start now? 200, or 403 + reason."""
        from hub_config.policy import load_policy
        from hub_config.quota.services.enforcement import _check

        b = self.body(schemas.SpawnCheckIn)
        actor = self.actor()
        pol = load_policy()
        if b.profile not in pol.profiles:
            raise BadInput(f"unknown profile {b.profile!r}")
        c = _check(
            s,
            self.q.settings,
            actor.name,
            b.team,
            pol.profiles[b.profile].gpus,
            None,
            "server start",
            utcnow(),
        )
        self.json({"ok": True, "team": c.team, "allocation_id": c.allocation_id})


class OpenAPI(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi(self.settings["quota"].prefix)))


# --------------------------------------------------------------------------- pages
class Page(BaseHandler):
    def render_page(self, template: str, **kw) -> None:
        self.render(
            template,
            prefix=self.q.prefix,
            hub_prefix=self.q.hub_prefix,
            actor=self.actor(),
            error=kw.pop("error", None),
            iso=ops.iso,
            **kw,
        )


class HomePage(Page):
    @web.authenticated
    @_tx
    def get(self, s):
        me = ops.me(s, self.actor(), self.q.settings)
        self.render_page("index.html", me=me, svg=usage_svg(me["usage"]))


class TeamPage(Page):
    @web.authenticated
    @_tx
    def get(self, s, team):
        view = ops.team_view(s, self.actor(), team)
        self.render_page("team.html", team=view, svg=usage_svg(view["usage"]))


class AdminPage(Page):
    @web.authenticated
    @_tx
    def get(self, s):
        from sqlalchemy import select

        from hub_config.policy import load_policy
        from hub_config.quota.storage.models import Team

        actor = self.actor()
        ops.require_admin(actor)
        now = utcnow()
        self.render_page(
            "admin.html",
            teams=[t.name for t in s.scalars(select(Team).order_by(Team.name))],
            requests=[
                ops.request_dict(r)
                for r in s.scalars(
                    select(Request)
                    .where(Request.state == RequestState.pending)
                    .order_by(Request.created)
                )
            ],
            usage=ops.all_usage(s, actor, now - dt.timedelta(days=31), now + dt.timedelta(hours=1)),
            audit=s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(30)).all(),
            tiers=load_policy().tier_names,
        )


class FormHandler(BaseHandler):
    """HTML form posts (XSRF-checked by the hub auth mixin); each maps onto one operation."""

    @web.authenticated
    def post(self, action: str):
        back = self.get_body_argument("back", "") or ""
        if not back.startswith(self.q.prefix):
            back = self.q.prefix
        try:
            self._do(action)
        except QuotaError as exc:
            self.set_status(exc.status)
            self.finish(
                self.render_string(
                    "error.html",
                    status=exc.status,
                    reason=str(exc),
                    prefix=self.q.prefix,
                    back=back,
                )
            )
            return
        self.redirect(back)

    @_tx
    def _do(self, s, action: str) -> None:
        actor = self.actor()
        changes = ops.Changes()
        arg = lambda k: self.get_body_argument(k, None)  # noqa: E731
        if action == "add-member":
            b = self.body_fields(schemas.MemberIn, "username", "role")
            ops.require_team_admin(s, actor, ops.team(s, arg("team") or ""))
            self.known_user(s, b.username)
            ops.add_member(s, actor, arg("team"), b.username, b.role, changes)
        elif action == "remove-member":
            ops.remove_member(s, actor, arg("team") or "", arg("username") or "", changes)
        elif action == "set-cap":
            b = self.body_fields(schemas.CapIn, "core_hours", "gpu_hours")
            ops.set_cap(
                s, actor, arg("team") or "", arg("username") or "", b.core_hours, b.gpu_hours
            )
        elif action == "request":
            b = self.body_fields(schemas.RequestIn, "kind", "justification", "tier", "team")
            ops.create_request(s, actor, b.kind, b.justification, b.tier, b.team)
        elif action == "decide":
            b = self.body_fields(schemas.DecisionIn, "approve", "note")
            ops.decide_request(s, actor, int(arg("request_id") or 0), b.approve, b.note, changes)
        elif action == "grant":
            b = self.body_fields(schemas.GrantIn, "tier", "expires_at")
            ops.require_admin(actor)
            self.known_user(s, arg("username") or "")
            ops.grant_tier(s, actor, arg("username"), b.tier, b.expires_at, changes)
        elif action == "revoke":
            ops.revoke_tier(s, actor, arg("username") or "", changes)
        elif action == "create-team":
            b = self.body_fields(schemas.TeamIn, "name", "description")
            ops.create_team(s, actor, b.name, b.description or "")
        elif action == "create-allocation":
            b = self.body_fields(
                schemas.AllocationIn,
                "user",
                "team",
                "core_hours",
                "gpu_hours",
                "home_gb",
                "scratch_gb",
                "period_start",
                "period_end",
            )
            ops.require_admin(actor)
            if b.user:
                self.known_user(s, b.user)
            ops.create_allocation(
                s,
                actor,
                user_name=b.user,
                team_name=b.team,
                core_hours=b.core_hours,
                gpu_hours=b.gpu_hours,
                home_gb=b.home_gb,
                scratch_gb=b.scratch_gb,
                period_start=b.period_start,
                period_end=b.period_end,
            )
        else:
            raise web.HTTPError(404, f"no form action {action!r}")
        self.apply(changes)

    def body_fields(self, model: type[BaseModel], *fields: str) -> BaseModel:
        data = {}
        for f in fields:
            v = self.get_body_argument(f, None)
            if v not in (None, ""):
                data[f] = v
        if "approve" in data:
            data["approve"] = data["approve"] in ("1", "true", "yes", "on")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise BadInput(
                "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors()
                )
            ) from None


# --------------------------------------------------------------------------- app
ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    ("api/me", MeAPI),
    ("api/costs", CostsAPI),
    ("api/teams", TeamsAPI),
    (r"api/teams/(?P<team>[^/]+)", TeamAPI),
    (r"api/teams/(?P<team>[^/]+)/members", MembersAPI),
    (r"api/teams/(?P<team>[^/]+)/members/(?P<username>[^/]+)", MemberAPI),
    (r"api/teams/(?P<team>[^/]+)/members/(?P<username>[^/]+)/cap", CapAPI),
    ("api/allocations", AllocationsAPI),
    (r"api/tiers/(?P<username>[^/]+)", TierAPI),
    ("api/requests", RequestsAPI),
    (r"api/requests/(?P<request_id>[0-9]+)/decision", DecisionAPI),
    ("api/usage", UsageAPI),
    ("api/audit", AuditAPI),
    ("api/check/spawn", SpawnCheckAPI),
]
BODIES = {
    ("api/teams", "post"): schemas.TeamIn,
    (r"api/teams/(?P<team>[^/]+)/members", "post"): schemas.MemberIn,
    (r"api/teams/(?P<team>[^/]+)/members/(?P<username>[^/]+)/cap", "put"): schemas.CapIn,
    ("api/allocations", "post"): schemas.AllocationIn,
    (r"api/tiers/(?P<username>[^/]+)", "put"): schemas.GrantIn,
    ("api/requests", "post"): schemas.RequestIn,
    (r"api/requests/(?P<request_id>[0-9]+)/decision", "post"): schemas.DecisionIn,
    ("api/check/spawn", "post"): schemas.SpawnCheckIn,
}


def openapi(prefix: str) -> dict:
    """The OpenAPI 3.1 document, built from the route table and the pydantic bodies."""
    import re

    paths: dict = {}
    comps: dict = {}
    for pattern, handler in ROUTES:
        path = "/" + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in re.findall(r"\(\?P<(\w+)>", pattern)
        ]
        ops_ = {}
        for method in ("get", "post", "put", "delete"):
            fn = handler.__dict__.get(method)
            if fn is None:
                continue
            op = {
                "summary": (fn.__doc__ or "").strip().split("\n")[0],
                "parameters": params,
                "responses": {
                    "200": {"description": "OK"},
                    "400": {"description": "bad input; body has 'reason'"},
                    "403": {"description": "forbidden; body has 'reason'"},
                },
            }
            body = BODIES.get((pattern, method))
            if body is not None:
                comps[body.__name__] = body.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{body.__name__}"}
                        }
                    },
                }
            ops_[method] = op
        paths[path] = ops_
    paths["/api/usage.csv"] = {
        "get": {
            "summary": "All usage as CSV (platform admins)",
            "responses": {"200": {"description": "text/csv"}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Roman platform quota service", "version": "1"},
        "servers": [{"url": prefix.rstrip("/")}],
        "components": {
            "schemas": comps,
            "securitySchemes": {
                "hubToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'token <JupyterHub API token>'",
                }
            },
        },
        "security": [{"hubToken": []}],
        "paths": paths,
    }


class QuotaApp:
    """Shared state of the service: settings, sessions, hub client and background loops."""

    def __init__(self, settings: QuotaSettings, hub=None, prefix: str = "/services/quota/"):
        self.settings = settings
        self.sessions = session_factory(settings.db_url)
        self.hub = hub
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.hub_prefix = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"
        self._users: dict[str, tuple[float, dict | None]] = {}
        self.synced: set[str] = set()  # users whose IdP teams were synced by this process

    def hub_user(self, name: str, fresh: bool = False) -> dict | None:
        """The hub's record of a user (groups, admin), cached for a few seconds."""
        if self.hub is None:
            return None
        hit = self._users.get(name)
        if hit and not fresh and time.monotonic() - hit[0] < 5:
            return hit[1]
        info = self.hub.user(name)
        self._users[name] = (time.monotonic(), info)
        return info

    def forget(self, name: str) -> None:
        self._users.pop(name, None)

    def sync_idp_teams(self, name: str, groups: set[str]) -> None:
        """Teams the IdP asserts (hub groups ``team-<t>``, ``team-<t>-admins``) join the record.

        Only for teams the quota database knows; a membership is added, or raised to admin,
        never removed here (removal is a team admin's decision in this service).
        """
        from sqlalchemy import select

        from hub_config.policy import teams_of_groups
        from hub_config.quota.storage.models import Membership, Role, Team

        self.synced.add(name)
        teams, admin_of = teams_of_groups(groups)
        if not teams and not admin_of:
            return
        with self.sessions() as s:
            for t in s.scalars(select(Team).where(Team.name.in_(teams | admin_of))):
                role = Role.admin if t.name in admin_of else Role.member
                m = ops.membership(s, t, name)
                if m is None:
                    s.add(Membership(team=t, user=ops.user(s, name, create=True), role=role))
                elif role == Role.admin and m.role != Role.admin:
                    m.role = role
                else:
                    continue
                ops.audit(
                    s,
                    "system",
                    "sync_from_idp",
                    f"team:{t.name}/user:{name}",
                    None,
                    {"role": role.value},
                )
            s.commit()

    def make_app(self) -> web.Application:
        p = self.prefix
        handlers = [(url_path_join(p, pat) + "$", h) for pat, h in ROUTES]
        handlers += [
            (url_path_join(p, "api/usage.csv"), UsageCSV),
            (url_path_join(p, "api/openapi.json"), OpenAPI),
            (url_path_join(p, "oauth_callback"), HubOAuthCallbackHandler),
            (url_path_join(p, "teams/([^/]+)"), TeamPage),
            (url_path_join(p, "admin"), AdminPage),
            (url_path_join(p, "forms/([a-z-]+)"), FormHandler),
            (p.rstrip("/") + "/?$", HomePage),
        ]
        return web.Application(
            handlers,
            quota=self,
            template_path=str(TEMPLATES),
            cookie_secret=os.environ.get("QUOTA_COOKIE_SECRET") or secrets.token_bytes(32),
            xsrf_cookies=True,
            autoescape="xhtml_escape",
        )


def _in_thread(loop: asyncio.AbstractEventLoop, work, what: str):
    """An async pass of ``work`` in a worker thread that skips while the previous one still runs
    (a slow database or a big home folder must not pile passes up) and logs its failures."""
    busy = False

    async def run():
        nonlocal busy
        if busy:
            return
        busy = True
        try:
            await loop.run_in_executor(None, work)
        except Exception:
            log.exception("%s failed", what)
        finally:
            busy = False

    return run


def start_background(q: QuotaApp, sample: bool, enforce: bool) -> list[ioloop.PeriodicCallback]:
    """Sampler, home storage measurement and grace enforcer on the service's loop, each pass in
    a worker thread."""
    from hub_config.quota.services.enforcement import GraceEnforcer
    from hub_config.quota.services.sampler import Sampler, build_sources

    loop = asyncio.get_event_loop()
    callbacks = []
    if sample:
        sampler = Sampler(
            q.sessions, build_sources(q.hub, q.settings), q.settings.sample_interval_s
        )
        callbacks.append(
            ioloop.PeriodicCallback(
                _in_thread(loop, sampler.sample_once, "sampling"),
                q.settings.sample_interval_s * 1000,
            )
        )
    if sample and q.settings.homes_dir:
        from hub_config.quota.services.home_storage import HomeStorageSampler

        storage = HomeStorageSampler(q.sessions, q.settings.homes_dir)
        measure = _in_thread(loop, storage.sample_once, "storage measurement")
        callbacks.append(ioloop.PeriodicCallback(measure, q.settings.storage_interval_s * 1000))
        loop.call_later(1.0, lambda: asyncio.ensure_future(measure()))  # a first figure soon
    if enforce and q.hub is not None:
        gw = GatewayStopper(q.hub, q.settings.gateway_url) if q.settings.gateway_url else None
        enforcer = GraceEnforcer(q.sessions, q.settings, q.hub.stop_server, gw.stop if gw else None)

        async def _enforce():
            try:
                done = await loop.run_in_executor(None, enforcer.run_once)
                if done:
                    log.info("grace enforcement: %s", done)
            except Exception:
                log.exception("enforcement failed")

        callbacks.append(ioloop.PeriodicCallback(_enforce, q.settings.enforce_interval_s * 1000))
    for cb in callbacks:
        cb.start()
    return callbacks


class GatewayStopper:
    """Stops a user's Dask cluster through the gateway API with a short-lived token of theirs.

    The gateway authenticates through the hub and lets users stop only their own clusters, so
    the service asks the hub (it holds the ``tokens`` scope) for a five-minute token of the user.
    """

    def __init__(self, hub, gateway_url: str):
        self.hub, self.url = hub, gateway_url.rstrip("/")

    def stop(self, user: str, cluster: str) -> None:
        import requests

        token = self.hub.user_token(user, note="quota grace-period stop", expires_in=300)
        r = requests.delete(
            f"{self.url}/api/v1/clusters/{cluster}",
            headers={"Authorization": f"jupyterhub {token}"},
            timeout=30,
        )
        if r.status_code not in (200, 204, 404):
            raise RuntimeError(f"gateway refused to stop {cluster}: {r.status_code} {r.text[:200]}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hub_config.quota.service",
        description="The quota service (run by JupyterHub as a service).",
    )
    p.add_argument("--settings", help="quota settings YAML (default $ROMAN_QUOTA_SETTINGS)")
    p.add_argument("--db-url", help="quota database URL (overrides settings)")
    p.add_argument("--no-sampler", action="store_true", help="do not sample usage in this process")
    p.add_argument("--no-enforce", action="store_true", help="do not run grace-period enforcement")
    p.add_argument("--sample-interval", type=float)
    p.add_argument("--grace-period", type=float)
    p.add_argument("--enforce-interval", type=float)
    p.add_argument("--gateway-db-url")
    p.add_argument("--gateway-url")
    p.add_argument(
        "--gateway-kube-namespace",
        help="on Kubernetes: namespace of the gateway's clusters, read for usage",
    )
    p.add_argument("--gateway-kube-instance", help="on Kubernetes: gateway instance label")
    p.add_argument("--homes-dir", help="local platform: folder of user homes, measured for storage")
    p.add_argument("--storage-interval", type=float, help="seconds between storage measurements")
    return p


def settings_from_args(args: argparse.Namespace) -> QuotaSettings:
    return load_settings(
        args.settings,
        db_url=args.db_url,
        sample_interval_s=args.sample_interval,
        grace_period_s=args.grace_period,
        enforce_interval_s=args.enforce_interval,
        gateway_db_url=args.gateway_db_url,
        gateway_url=args.gateway_url,
        gateway_kube_namespace=args.gateway_kube_namespace,
        gateway_kube_instance=args.gateway_kube_instance,
        homes_dir=args.homes_dir,
        storage_interval_s=args.storage_interval,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s quota %(levelname)s %(message)s")
    settings = settings_from_args(args)
    from hub_config.quota.storage.hubapi import HubClient

    hub = HubClient()
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101"))
    q = QuotaApp(settings, hub, os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/quota/"))
    server = HTTPServer(q.make_app(), xheaders=True, max_body_size=8 * 1024 * 1024)
    server.listen(url.port or 80, url.hostname or "127.0.0.1")
    log.info("quota service on %s (db %s)", url.geturl(), settings.db_url.split("@")[-1])
    start_background(q, sample=not args.no_sampler, enforce=not args.no_enforce)
    ioloop.IOLoop.current().start()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
