"""The handlers' common ground: the hub login as an actor, CSRF, typed bodies, errors, transactions.

Every handler turns the hub login into an :class:`~hub_config.quota.services.Actor` (platform
admin = hub admin, or member of the configured admin group, or holder of the
``custom:quota:admin`` scope) and calls :mod:`hub_config.quota.services`, which decides on the
server side what the actor may do. Changes and their audit entries commit in one transaction
(:func:`transactional`); hub group updates (tiers, teams) are applied before the commit, so a
hub failure leaves the database unchanged too.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from jupyterhub.services.auth import HubOAuthenticated
from pydantic import BaseModel, TypeAdapter, ValidationError
from tornado import web

from hub_config.policy import load_policy
from hub_config.quota import services as ops
from hub_config.quota.errors import BadInput, QuotaError

if TYPE_CHECKING:
    from hub_config.quota.app import QuotaApp

Body = TypeVar("Body", bound=BaseModel)

ADMIN_SCOPE = "custom:quota:admin"
MAX_BODY = 64 * 1024  # no legitimate call comes near this; bigger ones get a 400, not a reset


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
        tier = load_policy().tier_of_groups(groups) if info else None
        if info and name not in self.q.synced:
            self.q.sync_idp_teams(name, groups)
        return ops.Actor(name=name, platform_admin=admin, hub_tier=tier)

    def body(self, model: type[Body]) -> Body:
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
        return ops.known_user(s, name, lambda n: self.q.hub_user(n, fresh=True) is not None)

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


@cache
def adapter(kind: Any) -> TypeAdapter:
    """A pydantic adapter for a response type (a model, ``list[...]``, ``dict[str, ...]``, a union)."""
    return TypeAdapter(kind)


class ApiHandler(BaseHandler):
    api = True
    #: method -> (status, response type): what :meth:`reply` sends and the OpenAPI document shows.
    returns: ClassVar[dict[str, tuple[int, Any]]] = {}

    def reply(self, data: object, status: int | None = None) -> None:
        """Send ``data`` as this method's declared response type (:attr:`returns`), validated."""
        code, kind = self.returns[self.request.method.lower()]
        a = adapter(kind)
        self.json(
            a.dump_python(a.validate_python(data), mode="json", exclude_unset=True), status or code
        )

    def prepare(self):
        if len(self.request.body or b"") > MAX_BODY:
            raise BadInput(f"request body larger than {MAX_BODY // 1024} KiB")
        if not self.current_user:
            raise web.HTTPError(403, "authentication required (hub token or login)")


def transactional(method):
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
