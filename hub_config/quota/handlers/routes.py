"""The route table, the OpenAPI document built from it, and the tornado application."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from pydantic import BaseModel
from tornado import web

from hub_config.quota.handlers import schemas
from hub_config.quota.handlers.api import (
    AllocationsAPI,
    AuditAPI,
    CapAPI,
    CostsAPI,
    DecisionAPI,
    MeAPI,
    MemberAPI,
    MembersAPI,
    RequestsAPI,
    SpawnCheckAPI,
    TeamAPI,
    TeamsAPI,
    TierAPI,
    UsageAPI,
    UsageCSV,
)
from hub_config.quota.handlers.base import adapter
from hub_config.quota.handlers.pages import AdminPage, FormHandler, HomePage, TeamPage

if TYPE_CHECKING:
    from hub_config.quota.app import QuotaApp


TEMPLATES = Path(__file__).resolve().parent / "templates"


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


BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("api/teams", "post"): schemas.TeamIn,
    (r"api/teams/(?P<team>[^/]+)/members", "post"): schemas.MemberIn,
    (r"api/teams/(?P<team>[^/]+)/members/(?P<username>[^/]+)/cap", "put"): schemas.CapIn,
    ("api/allocations", "post"): schemas.AllocationIn,
    (r"api/tiers/(?P<username>[^/]+)", "put"): schemas.GrantIn,
    ("api/requests", "post"): schemas.RequestIn,
    (r"api/requests/(?P<request_id>[0-9]+)/decision", "post"): schemas.DecisionIn,
    ("api/check/spawn", "post"): schemas.SpawnCheckIn,
}


REF = "#/components/schemas/{model}"


def _schema(kind: Any, comps: dict) -> dict:
    """The JSON schema of a response type, its models collected into ``comps``."""
    s = adapter(kind).json_schema(ref_template=REF)
    comps.update(s.pop("$defs", {}))
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        comps[kind.__name__] = s
        return {"$ref": REF.format(model=kind.__name__)}
    return s


def _content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def openapi(prefix: str) -> dict:
    """The OpenAPI 3.1 document, built from the route table and the pydantic bodies and replies."""
    paths: dict = {}
    comps: dict = {}
    reason = _schema(schemas.Reason, comps)
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
            responses: dict[str, dict] = {}
            returns = getattr(handler, "returns", {}).get(method)
            if returns is not None:
                code, kind = returns
                responses[str(code)] = {
                    "description": "OK",
                    "content": _content(_schema(kind, comps)),
                }
            responses["400"] = {"description": "bad input", "content": _content(reason)}
            responses["403"] = {"description": "forbidden", "content": _content(reason)}
            op: dict = {
                "summary": (fn.__doc__ or "").strip().split("\n")[0],
                "parameters": params,
                "responses": responses,
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


class OpenAPI(web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi(self.settings["quota"].prefix)))


def make_app(q: QuotaApp) -> web.Application:
    """The tornado application of the service: the API routes, the pages and the OAuth callback."""
    p = q.prefix
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
        quota=q,
        template_path=str(TEMPLATES),
        cookie_secret=os.environ.get("QUOTA_COOKIE_SECRET") or secrets.token_bytes(32),
        xsrf_cookies=True,
        autoescape="xhtml_escape",
    )
