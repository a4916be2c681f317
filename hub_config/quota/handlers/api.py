"""The JSON API: one handler per resource, each a thin call into :mod:`hub_config.quota.services`.

Bodies are parsed into the typed models of :mod:`.schemas` (which also make the OpenAPI
document, :mod:`.routes`); refusals come back as ``{"status", "reason"}``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from tornado import web

from hub_config.policy import load_policy
from hub_config.quota import services as ops
from hub_config.quota.errors import BadInput
from hub_config.quota.handlers import schemas
from hub_config.quota.handlers.base import ApiHandler, BaseHandler, transactional
from hub_config.quota.services.common import _when
from hub_config.quota.storage.models import utcnow


class MeAPI(ApiHandler):
    returns = {"get": (200, schemas.MeOut)}

    @transactional
    def get(self, s):
        """My tier, teams, allocation, usage this period, profile costs, requests and warnings."""
        self.reply(ops.me(s, self.actor(), self.q.settings))


class CostsAPI(ApiHandler):
    returns = {"get": (200, dict[str, schemas.ProfileCost])}

    def get(self):
        """What each profile costs per hour (cores and GPUs it reserves)."""
        self.reply(ops.profile_costs())


class TeamsAPI(ApiHandler):
    returns = {"post": (201, schemas.TeamOut)}

    @transactional
    def post(self, s):
        """Create a team (platform admins)."""
        b = self.body(schemas.TeamIn)
        t = ops.create_team(s, self.actor(), b.name, b.description)
        self.reply({"name": t.name, "description": t.description})


class TeamAPI(ApiHandler):
    returns = {"get": (200, schemas.TeamViewOut)}

    @transactional
    def get(self, s, team):
        """A team: allocation and usage; members, caps and usage per member for its admins."""
        self.reply(ops.team_view(s, self.actor(), team))


class MembersAPI(ApiHandler):
    returns = {"post": (201, schemas.MemberOut | schemas.InviteOut)}

    @transactional
    def post(self, s, team):
        """Add a member (platform admins), or invite one (team admins: 202, the user accepts)."""
        b = self.body(schemas.MemberIn)
        actor = self.actor()
        ops.require_team_admin(s, actor, ops.team(s, team))
        self.known_user(s, b.username)
        changes = ops.Changes()
        out = ops.add_member(s, actor, team, b.username, b.role, changes)
        self.apply(changes)
        self.reply(out, 202 if "invited" in out else 201)  # 202: an invitation the user decides


class MemberAPI(ApiHandler):
    returns = {"delete": (200, schemas.RemovedOut)}

    @transactional
    def delete(self, s, team, username):
        """Remove a member."""
        changes = ops.Changes()
        ops.remove_member(s, self.actor(), team, username, changes)
        self.apply(changes)
        self.reply({"removed": username})


class CapAPI(ApiHandler):
    returns = {"put": (200, schemas.CapOut)}

    @transactional
    def put(self, s, team, username):
        """Set a member's caps inside the team allocation (null = no cap)."""
        b = self.body(schemas.CapIn)
        self.reply(ops.set_cap(s, self.actor(), team, username, b.core_hours, b.gpu_hours))


class AllocationsAPI(ApiHandler):
    returns = {"post": (201, schemas.AllocationOut)}

    @transactional
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
        self.reply(ops.allocation_dict(s, a))


class TierAPI(ApiHandler):
    returns = {"put": (200, schemas.GrantOut), "delete": (200, schemas.RevokedOut)}

    @transactional
    def put(self, s, username):
        """Grant a tier (platform admins); updates the user's tier-<name> hub group."""
        b = self.body(schemas.GrantIn)
        actor = self.actor()
        ops.require_admin(actor)
        self.known_user(s, username)
        changes = ops.Changes()
        out = ops.grant_tier(s, actor, username, b.tier, b.expires_at, changes)
        self.apply(changes)
        self.reply(out)

    @transactional
    def delete(self, s, username):
        """Revoke a user's tier grant; they fall back to the default tier."""
        changes = ops.Changes()
        ops.revoke_tier(s, self.actor(), username, changes)
        self.apply(changes)
        self.reply({"revoked": username})


class RequestsAPI(ApiHandler):
    returns = {"get": (200, list[schemas.RequestOut]), "post": (201, schemas.RequestOut)}

    @transactional
    def get(self, s):
        """Pending requests (platform admins) or my own requests."""
        self.reply(ops.requests_for(s, self.actor()))

    @transactional
    def post(self, s):
        """Request a tier, a renewal or to join a team, with a justification."""
        b = self.body(schemas.RequestIn)
        r = ops.create_request(s, self.actor(), b.kind, b.justification, b.tier, b.team)
        self.reply(ops.request_dict(r))


class DecisionAPI(ApiHandler):
    returns = {"post": (200, schemas.RequestOut)}

    @transactional
    def post(self, s, request_id):
        """Approve or decline a request (platform admins; a team's admins for joins; the
        invitee for an invitation)."""
        b = self.body(schemas.DecisionIn)
        changes = ops.Changes()
        out = ops.decide_request(s, self.actor(), int(request_id), b.approve, b.note, changes)
        self.apply(changes)
        self.reply(out)


def _period_args(handler) -> tuple[dt.datetime, dt.datetime]:
    now = utcnow()
    start = _when(handler.get_argument("start", None), "start") or now - dt.timedelta(days=31)
    end = _when(handler.get_argument("end", None), "end") or now + dt.timedelta(hours=1)
    if end <= start:
        raise BadInput("end must be after start")
    return start, end


class UsageAPI(ApiHandler):
    returns = {"get": (200, list[schemas.UsageRow])}

    @transactional
    def get(self, s):
        """Usage per user and team between start and end (platform admins)."""
        start, end = _period_args(self)
        self.reply(ops.all_usage(s, self.actor(), start, end))


class UsageCSV(BaseHandler):
    @web.authenticated
    @transactional
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
    returns = {"get": (200, list[schemas.AuditOut])}

    @transactional
    def get(self, s):
        """The newest audit entries (platform admins)."""
        actor = self.actor()
        ops.require_admin(actor)
        limit = min(int(self.get_argument("limit", "200") or 200), 5000)
        self.reply(ops.audit_log(s, actor, limit))


class SpawnCheckAPI(ApiHandler):
    returns = {"post": (200, schemas.SpawnCheckOut)}

    @transactional
    def post(self, s):
        """Would a server with this profile (charged to this team) start now? 200, or 403 + reason."""
        from hub_config.quota.services.enforcement import check_charge

        b = self.body(schemas.SpawnCheckIn)
        actor = self.actor()
        pol = load_policy()
        if b.profile not in pol.profiles:
            raise BadInput(f"unknown profile {b.profile!r}")
        c = check_charge(
            s,
            self.q.settings,
            actor.name,
            b.team,
            pol.profiles[b.profile].gpus,
            None,
            "server start",
            utcnow(),
        )
        self.reply({"ok": True, "team": c.team, "allocation_id": c.allocation_id})
