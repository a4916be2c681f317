"""The MyST-style OpenID Connect authenticator.

MyST is a SAML identity provider; deployments put an OIDC broker in front of it (CILogon,
Keycloak, Cognito) and the hub speaks OIDC to the broker, the same code path as the development
provider in ``hub_config.oidc_dev``. On top of oauthenticator's GenericOAuthenticator this adds
what the platform's security rests on:

* discovery from ``<issuer>/.well-known/openid-configuration`` (no hand-copied endpoint URLs);
* ID-token verification (RS256 signature against the provider's JWKS, issuer, audience, expiry):
  oauthenticator reads ID tokens without checking their signature;
* the tier decision (grant from the platform database, IdP group/claim mapping, default) turned
  into exactly one ``tier-<name>`` hub group, teams into ``team-<name>`` (+ ``-admins``), platform
  admins into hub admins, and each team's admins into a role scoped to that team only;
* logout that also ends the provider session (RP-initiated logout with ``id_token_hint``).

Size: about 475 lines, most of them one class: :class:`RomanOIDCAuthenticator` is a traitlets
``Configurable`` whose traits, token checks and group decision JupyterHub reads as one object;
spreading its methods over mixins would make a reader follow the MRO to see one login.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization
from joserfc.jwt import JWTClaimsRegistry
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler, OAuthLogoutHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Unicode, default

from hub_config.policy import (
    NoGrants,
    Policy,
    TierGrantSource,
    load_policy,
    tier_group,
)

# Set while refresh_user runs: an expired ID token there means "use the refresh token", not
# "refuse the login".
_REFRESHING: contextvars.ContextVar[bool] = contextvars.ContextVar("refreshing", default=False)


class IdTokenError(Exception):
    """An ID token failed verification."""


class _DiscoveringLoginHandler(OAuthLoginHandler):
    async def get(self) -> None:
        await self.authenticator.discover()
        await self.authenticator.check_provider_up()
        super().get()


class _ProviderLogoutHandler(OAuthLogoutHandler):
    """Ends the hub session, then sends the browser to the provider's end-session endpoint."""

    _id_token: str | None = None

    async def handle_logout(self) -> None:
        await super().handle_logout()
        user = self.current_user
        if user is not None and self.authenticator.enable_auth_state:
            state = await user.get_auth_state()
            self._id_token = (state or {}).get("id_token")

    async def render_logout_page(self) -> None:
        url = await self.authenticator.provider_logout_url(self._id_token)
        if url:
            self.redirect(url)
            return
        await super().render_logout_page()


class RomanOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator for a MyST-fronting OIDC broker, with tiers, teams and roles."""

    if TYPE_CHECKING:  # OAuthenticator's traits this class fills from discovery (untyped package)
        authorize_url: str
        token_url: str
        userdata_url: str

    login_service = Unicode("MyST", config=True)
    oidc_issuer = Unicode(
        config=True, help="Issuer URL; endpoints come from its /.well-known/openid-configuration"
    )
    discovery_timeout = Float(30.0, config=True, help="Seconds to keep retrying discovery")
    provider_wait = Float(
        6.0,
        config=True,
        help="Seconds a login waits for a provider that does not answer (one restarting) "
        "before the hub shows 'the sign-in service is not answering' (503)",
    )
    id_token_leeway = Float(30.0, config=True, help="Clock skew allowed on exp/iat, seconds")
    end_provider_session = Bool(
        True, config=True, help="On logout, also end the provider session if it supports it"
    )
    post_logout_redirect_uri = Unicode(
        "", config=True, help="Where the provider sends the browser after ending its session"
    )
    tier_grants = AnyTrait(
        config=True,
        help="A hub_config.policy.TierGrantSource (the quota database's grants). Default: none.",
    )

    @default("tier_grants")
    def _tier_grants_default(self) -> TierGrantSource:
        return NoGrants()

    # MyST-style defaults: PKCE, auth state (tokens for refresh and logout), managed groups.
    @default("enable_pkce")
    def _pkce_default(self) -> bool:
        return True

    @default("enable_auth_state")
    def _auth_state_default(self) -> bool:
        return True

    @default("manage_groups")
    def _manage_groups_default(self) -> bool:
        return True

    @default("allow_all")
    def _allow_all_default(self) -> bool:
        # Every authenticated MyST user may use the platform (as Entry at least).
        return True

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self) -> bool:
        return True

    @default("scope")
    def _scope_default(self) -> list[str]:
        return ["openid", "profile", "email", "groups", "offline_access"]

    @default("username_claim")
    def _username_claim_default(self) -> str:
        return self.policy.identity.username_claim

    @default("auth_state_groups_key")
    def _groups_key_default(self) -> Any:
        return lambda auth_state: (auth_state.get("roman") or {}).get("hub_groups", [])

    login_handler = _DiscoveringLoginHandler
    logout_handler = _ProviderLogoutHandler

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._discovery: dict[str, Any] | None = None
        self._jwks: KeySet | None = None
        self._discovery_lock = asyncio.Lock()

    @property
    def policy(self) -> Policy:
        return load_policy()  # $ROMAN_POLICY_FILE, else the bundled one (hub_config.policy)

    # ---------------------------------------------------------------- discovery and keys
    async def _get_json(self, url: str) -> dict[str, Any]:
        resp = await AsyncHTTPClient().fetch(
            HTTPRequest(
                url,
                headers={"Accept": "application/json"},
                request_timeout=10,
                validate_cert=self.validate_server_cert,
            )
        )
        return json.loads(resp.body)

    async def discover(self) -> dict[str, Any]:
        """Fetch the provider configuration once (bounded retries while the provider starts)."""
        if self._discovery is not None:
            return self._discovery
        if not self.oidc_issuer:
            raise web.HTTPError(500, "RomanOIDCAuthenticator.oidc_issuer is not configured")
        async with self._discovery_lock:
            if self._discovery is not None:
                return self._discovery
            url = self.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
            deadline = time.monotonic() + self.discovery_timeout
            while True:
                try:
                    doc = await self._get_json(url)
                    break
                except Exception as exc:
                    if time.monotonic() > deadline:
                        self.log.warning("login: OIDC discovery at %s failed: %s", url, exc)
                        raise _provider_down() from exc
                    await asyncio.sleep(1.0)
            if doc.get("issuer", "").rstrip("/") != self.oidc_issuer.rstrip("/"):
                raise web.HTTPError(
                    500, f"discovery issuer {doc.get('issuer')!r} != {self.oidc_issuer!r}"
                )
            # Fill what the operator did not set explicitly.
            self.authorize_url = self.authorize_url or doc["authorization_endpoint"]
            self.token_url = self.token_url or doc["token_endpoint"]
            self.userdata_url = self.userdata_url or doc.get("userinfo_endpoint", "")
            methods = doc.get("code_challenge_methods_supported") or []
            if self.enable_pkce and "S256" not in methods:
                self.log.warning("provider does not advertise PKCE S256; sending it anyway")
            self._discovery = doc
            return doc

    async def check_provider_up(self) -> None:
        """Before sending a browser to the provider, make sure it answers: a provider that is
        down (restarting after a crash takes ~2 s locally) would otherwise leave the user on a
        browser's connection-error page. It is waited for up to ``provider_wait`` seconds, then
        the login is refused with a 503 page that says what is wrong and that running servers
        are not affected."""
        url = self.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration"
        deadline = time.monotonic() + self.provider_wait
        while True:
            try:
                await AsyncHTTPClient().fetch(
                    HTTPRequest(
                        url,
                        request_timeout=min(3.0, self.provider_wait),
                        validate_cert=self.validate_server_cert,
                    )
                )
                return
            except Exception as exc:
                if time.monotonic() >= deadline:
                    self.log.warning("login: the identity provider %s is down: %s", url, exc)
                    raise _provider_down() from exc
                await asyncio.sleep(0.5)

    async def _keyset(self, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            doc = await self.discover()
            # the provider's JWKS document (its shape is checked by import_key_set)
            jwks = cast(KeySetSerialization, await self._get_json(doc["jwks_uri"]))
            self._jwks = KeySet.import_key_set(jwks)
        return self._jwks

    async def verify_id_token(self, id_token: str) -> dict[str, Any]:
        """Verify an ID token's signature (provider JWKS, RS256 only) and its claims.

        Raises IdTokenError with the reason. Unknown key ids trigger one JWKS refetch so a
        provider key rotation does not lock users out.
        """
        doc = await self.discover()
        keys = await self._keyset()
        try:
            header = json.loads(_b64json(id_token.split(".")[0]))
        except Exception as exc:
            raise IdTokenError("ID token is not a JWS") from exc
        if header.get("alg") != "RS256":
            raise IdTokenError(f"ID token algorithm {header.get('alg')!r} not accepted")
        kid = header.get("kid")
        if kid and all(k.kid != kid for k in keys.keys):
            keys = await self._keyset(refresh=True)
        try:
            token = jwt.decode(id_token, keys, algorithms=["RS256"])
        except (JoseError, ValueError) as exc:
            raise IdTokenError(f"ID token signature invalid: {exc}") from exc
        claims = token.claims
        registry = JWTClaimsRegistry(
            leeway=int(self.id_token_leeway),
            iss={"essential": True, "value": doc["issuer"]},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise IdTokenError(f"ID token rejected: {exc}") from exc
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(aud) > 1 and claims.get("azp") != self.client_id:
            raise IdTokenError("ID token has several audiences and azp is not this client")
        return dict(claims)

    # ---------------------------------------------------------------- oauthenticator hooks
    async def authenticate(self, handler: Any, data: Any = None, **kwargs: Any) -> Any:
        await self.discover()
        return await super().authenticate(handler, data, **kwargs)

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        await self.discover()
        token = _REFRESHING.set(True)
        try:
            return await super().refresh_user(user, handler, **kwargs)
        finally:
            _REFRESHING.reset(token)

    async def token_to_user(self, token_info: dict[str, Any]) -> dict[str, Any]:
        id_token = token_info.get("id_token")
        if not id_token:
            raise web.HTTPError(403, "The identity provider returned no ID token (scope openid?)")
        try:
            id_claims = await self.verify_id_token(id_token)
        except IdTokenError as exc:
            if _REFRESHING.get():
                # Let refresh_user fall back to the refresh token.
                raise HTTPClientError(401, str(exc)) from exc
            self.log.warning("login refused: %s", exc)
            raise web.HTTPError(403, f"Login refused: {exc}") from exc
        userinfo: dict[str, Any] = {}
        if self.userdata_url:
            userinfo = await super().token_to_user(token_info)
            if userinfo.get("sub") != id_claims["sub"]:
                raise web.HTTPError(403, "Login refused: userinfo subject differs from ID token")
        protocol = {"iss", "aud", "exp", "iat", "nonce", "at_hash", "azp", "auth_time", "sid"}
        return {**{k: v for k, v in id_claims.items() if k not in protocol}, **userinfo}

    def resolve_tier(self, username: str, user_info: dict[str, Any]) -> tuple[str, str]:
        """(tier, reason): the highest of the stored grant and the IdP mapping, else the default."""
        policy = self.policy
        ident = policy.identity
        groups = _as_list(user_info.get(ident.groups_claim))
        claim = user_info.get(ident.tier_claim) if ident.tier_claim else None
        idp = policy.tier_from_idp(groups, claim if isinstance(claim, str) else None)
        granted = self.tier_grants.granted_tier(username)
        if granted is not None and granted not in policy.tiers:
            self.log.warning("ignoring grant of unknown tier %r to %s", granted, username)
            granted = None
        best = policy.highest([t for t in (granted, idp) if t])
        if best is None:
            return policy.default_tier, "default"
        return best, ("grant" if best == granted else "identity provider")

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        policy = self.policy
        ident = policy.identity
        auth_state = auth_model["auth_state"]
        user_info = auth_state[self.user_auth_state_key]
        username = auth_model["name"]
        groups = _as_list(user_info.get(ident.groups_claim))
        tier, reason = self.resolve_tier(username, user_info)
        teams, admin_of = idp_teams(ident, groups)
        # Quota (issue 5): memberships made in the quota service survive the login's group sync.
        teams_of = getattr(self.tier_grants, "teams_of", None)
        if teams_of is not None:
            for team, role in teams_of(username):
                teams.add(team)
                if role == "admin":
                    admin_of.add(team)
        admin_of &= teams | admin_of
        teams |= admin_of
        hub_groups = (
            {tier_group(tier)}
            | {f"team-{t}" for t in teams}
            | {f"team-{t}-admins" for t in admin_of}
        )
        auth_state["roman"] = {
            "tier": tier,
            "tier_reason": reason,
            "teams": sorted(teams),
            "team_admin_of": sorted(admin_of),
            "hub_groups": sorted(hub_groups),
            # for the server's git (commits made from JupyterLab, a repository's first commit)
            "name": str(user_info.get("name") or ""),
            "email": str(user_info.get("email") or ""),
        }
        is_admin = bool(set(groups) & set(ident.platform_admin_groups))
        auth_model["admin"] = True if username in self.admin_users else is_admin
        for team in admin_of:
            self._ensure_team_admin_role(team)
        self.log.info("login %s: tier %s (%s), teams %s", username, tier, reason, sorted(teams))
        return auth_model

    def _ensure_team_admin_role(self, team: str) -> None:
        """A role granting team-<team>-admins power over team-<team> only (created on demand)."""
        db = getattr(self.parent, "db", None)
        if db is None:
            return
        from jupyterhub import orm, roles

        group_name, admins_name = f"team-{team}", f"team-{team}-admins"
        for name in (group_name, admins_name):
            if orm.Group.find(db, name) is None:
                db.add(orm.Group(name=name))
        db.commit()
        filt = f"!group={group_name}"
        role = {
            "name": f"team-admin-{team}",
            "description": f"Administer the members of team {team} and their servers",
            "scopes": [
                f"read:groups{filt}",
                f"list:users{filt}",
                f"read:users{filt}",
                f"read:users:activity{filt}",
                f"read:servers{filt}",
                f"servers{filt}",
            ],
        }
        orm_role = roles.create_role(db, role, commit=True)
        group = orm.Group.find(db, admins_name)
        if group not in orm_role.groups:
            roles.grant_role(db, entity=group, rolename=role["name"], commit=True)

    async def provider_logout_url(self, id_token: str | None) -> str | None:
        """The provider's end-session URL for this login, or None when there is none."""
        if not self.end_provider_session:
            return None
        doc = await self.discover()
        endpoint = doc.get("end_session_endpoint")
        if not endpoint:
            return None
        params = {"client_id": self.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        if self.post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = self.post_logout_redirect_uri
        return f"{endpoint}?{urlencode(params)}"


def _provider_down() -> web.HTTPError:
    """What a user sees when the identity provider does not answer (the cause goes to the log)."""
    return web.HTTPError(
        503,
        "The sign-in service is not answering right now. Servers and notebooks that are "
        "already running are not affected; please try again in a minute.",
    )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def idp_teams(ident: Any, groups: list[str]) -> tuple[set[str], set[str]]:
    """(teams, teams administered) that the IdP groups assert, named as the hub names them;
    the demo seeding of the quota database (hub_config/local/demo_teams.py) reads the same mapping."""
    teams, admin_of = set(), set()
    for g in groups:
        if not g.startswith(ident.team_group_prefix):
            continue
        rest = g[len(ident.team_group_prefix) :]
        if rest.endswith(ident.team_admin_suffix):
            admin_of.add(_slug(rest[: -len(ident.team_admin_suffix)]))
        else:
            teams.add(_slug(rest))
    return teams, admin_of


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower())


def _b64json(segment: str) -> str:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


def configure_oidc(c: Any, oidc: dict[str, Any]) -> None:
    """Wire RomanOIDCAuthenticator into a hub config from an ``oidc`` settings section.

    Keys: issuer, client_id, client_secret, callback_url, post_logout_redirect_uri, and
    optionally crypt_key (hex; used when $JUPYTERHUB_CRYPT_KEY is unset) and auto_login.
    """
    import os

    c.JupyterHub.authenticator_class = "hub_config.auth.RomanOIDCAuthenticator"
    c.RomanOIDCAuthenticator.oidc_issuer = oidc["issuer"]
    c.RomanOIDCAuthenticator.client_id = oidc["client_id"]
    c.RomanOIDCAuthenticator.client_secret = oidc["client_secret"]
    c.RomanOIDCAuthenticator.oauth_callback_url = oidc["callback_url"]
    c.RomanOIDCAuthenticator.post_logout_redirect_uri = oidc.get("post_logout_redirect_uri", "")
    c.RomanOIDCAuthenticator.auto_login = bool(oidc.get("auto_login", False))
    if not os.environ.get("JUPYTERHUB_CRYPT_KEY") and oidc.get("crypt_key"):
        # Auth state (tokens for refresh and provider logout) is stored encrypted.
        c.CryptKeeper.keys = [bytes.fromhex(oidc["crypt_key"])]
