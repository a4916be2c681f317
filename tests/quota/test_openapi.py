"""The OpenAPI document describes every JSON route's body and reply from the typed models, and
the reply models refuse what they do not name (so a reply that drifts from its model fails)."""

from __future__ import annotations

import pydantic
import pytest

from hub_config.quota.handlers import schemas
from hub_config.quota.handlers.base import adapter
from hub_config.quota.handlers.routes import ROUTES, openapi


def test_every_api_method_declares_its_reply():
    for _, handler in ROUTES:
        for method in ("get", "post", "put", "delete"):
            if method in handler.__dict__:
                assert method in handler.returns, f"{handler.__name__}.{method} has no returns"


def test_the_document_shows_bodies_and_replies():
    doc = openapi("/services/quota/")
    comps = doc["components"]["schemas"]
    me = doc["paths"]["/api/me"]["get"]["responses"]
    assert me["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MeOut"
    }
    assert me["403"]["content"]["application/json"]["schema"]["$ref"].endswith("/Reason")
    # nested models are hoisted into the components, list replies are arrays of a model
    assert {"MeOut", "AllocationOut", "UsagePoint", "StorageOut", "RequestOut"} <= set(comps)
    reqs = doc["paths"]["/api/requests"]["get"]["responses"]["200"]["content"]
    assert reqs["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/RequestOut"
    }
    post = doc["paths"]["/api/teams"]["post"]
    assert "201" in post["responses"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TeamIn")
    for ref in _refs(doc):
        assert ref.rsplit("/", 1)[1] in comps, ref


def _refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_a_reply_is_dumped_as_given_and_refused_when_it_drifts():
    a = adapter(schemas.MemberOut | schemas.InviteOut)
    invite = {"invited": "bob", "request": 3, "state": "pending"}
    assert a.dump_python(a.validate_python(invite), mode="json", exclude_unset=True) == invite
    team = adapter(schemas.TeamViewOut)
    view = {"name": "lens", "description": "", "can_admin": False, "allocation": None, "usage": []}
    # keys a non-admin does not get stay absent (not null)
    assert team.dump_python(team.validate_python(view), mode="json", exclude_unset=True) == view
    with pytest.raises(pydantic.ValidationError, match="extra"):
        team.validate_python(view | {"secret": 1})
