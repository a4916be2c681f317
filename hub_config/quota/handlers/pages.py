"""The HTML pages (home, team, admin) and their form posts, rendered on the server.

Form posts are XSRF-checked by the hub auth mixin and parsed into the same typed models as the
JSON API (:mod:`.schemas`), so pages and API share one validation.
"""

from __future__ import annotations

from pydantic import ValidationError
from tornado import web

from hub_config.quota import services as ops
from hub_config.quota.errors import BadInput, QuotaError
from hub_config.quota.handlers import schemas
from hub_config.quota.handlers.base import BaseHandler, Body, transactional
from hub_config.quota.handlers.plot import usage_svg


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
    @transactional
    def get(self, s):
        me = ops.me(s, self.actor(), self.q.settings)
        self.render_page("index.html", me=me, svg=usage_svg(me["usage"]))


class TeamPage(Page):
    @web.authenticated
    @transactional
    def get(self, s, team):
        view = ops.team_view(s, self.actor(), team)
        self.render_page("team.html", team=view, svg=usage_svg(view["usage"]))


class AdminPage(Page):
    @web.authenticated
    @transactional
    def get(self, s):
        self.render_page("admin.html", **ops.admin_view(s, self.actor()))


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

    @transactional
    def _do(self, s, action: str) -> None:
        actor = self.actor()
        changes = ops.Changes()
        arg = lambda k: self.get_body_argument(k, None)  # noqa: E731
        if action == "add-member":
            m = self.body_fields(schemas.MemberIn, "username", "role")
            ops.require_team_admin(s, actor, ops.team(s, arg("team") or ""))
            self.known_user(s, m.username)
            ops.add_member(s, actor, arg("team") or "", m.username, m.role, changes)
        elif action == "remove-member":
            ops.remove_member(s, actor, arg("team") or "", arg("username") or "", changes)
        elif action == "set-cap":
            cap = self.body_fields(schemas.CapIn, "core_hours", "gpu_hours")
            ops.set_cap(
                s, actor, arg("team") or "", arg("username") or "", cap.core_hours, cap.gpu_hours
            )
        elif action == "request":
            req = self.body_fields(schemas.RequestIn, "kind", "justification", "tier", "team")
            ops.create_request(s, actor, req.kind, req.justification, req.tier, req.team)
        elif action == "decide":
            dec = self.body_fields(schemas.DecisionIn, "approve", "note")
            ops.decide_request(
                s, actor, int(arg("request_id") or 0), dec.approve, dec.note, changes
            )
        elif action == "grant":
            grant = self.body_fields(schemas.GrantIn, "tier", "expires_at")
            ops.require_admin(actor)
            self.known_user(s, arg("username") or "")
            ops.grant_tier(s, actor, arg("username") or "", grant.tier, grant.expires_at, changes)
        elif action == "revoke":
            ops.revoke_tier(s, actor, arg("username") or "", changes)
        elif action == "create-team":
            new = self.body_fields(schemas.TeamIn, "name", "description")
            ops.create_team(s, actor, new.name, new.description or "")
        elif action == "create-allocation":
            alloc = self.body_fields(
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
            if alloc.user:
                self.known_user(s, alloc.user)
            ops.create_allocation(
                s,
                actor,
                user_name=alloc.user,
                team_name=alloc.team,
                core_hours=alloc.core_hours,
                gpu_hours=alloc.gpu_hours,
                home_gb=alloc.home_gb,
                scratch_gb=alloc.scratch_gb,
                period_start=alloc.period_start,
                period_end=alloc.period_end,
            )
        else:
            raise web.HTTPError(404, f"no form action {action!r}")
        self.apply(changes)

    def body_fields(self, model: type[Body], *fields: str) -> Body:
        data: dict[str, object] = {}
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
