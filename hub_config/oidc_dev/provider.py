"""The development OIDC provider's HTTP endpoints (tornado), signing with joserfc (state: :mod:`.state`).

Each check a production provider makes is made here, because the tests use this provider to prove
the hub refuses what it must: codes are single use, bound to client, redirect URI and PKCE
challenge (S256 only, required), and expire after a minute; the client authenticates with its
secret; ID tokens are RS256-signed with a key published in the JWKS; refresh tokens rotate.
"""

from __future__ import annotations

import base64
import html
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from joserfc import jwt
from joserfc.jwk import KeySet
from tornado import web

from hub_config.oidc_dev.state import (
    CODE_TTL,
    CSRF_PARAM,
    LOGIN_CSRF_COOKIE,
    REFRESH_TTL,
    SESSION_COOKIE,
    ProviderConfig,
    State,
    s256,
)


class _Base(web.RequestHandler):
    @property
    def st(self) -> State:
        return self.application.settings["oidc_state"]

    def oauth_error(self, status: int, error: str, description: str) -> None:
        # RFC 6749 section 5.2 error body; never echo secrets.
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish({"error": error, "error_description": description})

    def bad_request_page(self, description: str) -> None:
        # Errors before the redirect URI is trusted must not redirect (open-redirect rule).
        self.set_status(400)
        self.finish(f"<h1>Bad request</h1><p>{html.escape(description)}</p>")


class Discovery(_Base):
    def get(self) -> None:
        iss = self.st.config.issuer.rstrip("/")
        self.finish(
            {
                "issuer": self.st.config.issuer,
                "authorization_endpoint": f"{iss}/authorize",
                "token_endpoint": f"{iss}/token",
                "userinfo_endpoint": f"{iss}/userinfo",
                "jwks_uri": f"{iss}/jwks",
                "end_session_endpoint": f"{iss}/logout",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "nonce",
                    "preferred_username",
                    "name",
                    "email",
                    "groups",
                    "roman_tier",
                ],
            }
        )


class Jwks(_Base):
    def get(self) -> None:
        self.finish(dict(KeySet([self.st.key]).as_dict(private=False)))


LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>MyST (development) sign in</title>
<style>body{{font-family:sans-serif;max-width:32em;margin:3em auto}}label{{display:block;margin:.5em 0}}
table{{border-collapse:collapse;font-size:.9em}}td{{padding:.1em .6em}}</style></head><body>
<h1>MyST sign in <small>(development provider)</small></h1>
<p>{error}</p>
<form method="post" action="{action}">
<input type="hidden" name="request" value="{request}">
<label>Username <input name="username" id="username" autocomplete="username"></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" id="login">Sign in</button>
</form>
<p>The demo accounts and their passwords are listed in the terminal that started the platform.</p>
</body></html>"""


class Authorize(_Base):
    """GET validates the request and shows the login form; POST checks the password."""

    def _validated_request(self, args: dict[str, str]) -> dict[str, str] | None:
        cfg = self.st.config
        if args.get("client_id") != cfg.client_id:
            self.bad_request_page("unknown client_id")
            return None
        if args.get("redirect_uri") not in cfg.redirect_uris:
            self.bad_request_page("redirect_uri is not registered for this client")
            return None
        return args

    def _redirect_error(self, args: dict[str, str], error: str, description: str) -> None:
        self.redirect(
            _with_query(
                args["redirect_uri"],
                {"error": error, "error_description": description, "state": args.get("state", "")},
            )
        )

    def _check_params(self, args: dict[str, str]) -> bool:
        if args.get("response_type") != "code":
            self._redirect_error(
                args, "unsupported_response_type", "only the code flow is supported"
            )
            return False
        if "openid" not in args.get("scope", "").split():
            self._redirect_error(args, "invalid_scope", "scope must include openid")
            return False
        if not args.get("code_challenge"):
            self._redirect_error(args, "invalid_request", "PKCE code_challenge is required")
            return False
        if args.get("code_challenge_method") != "S256":
            self._redirect_error(args, "invalid_request", "code_challenge_method must be S256")
            return False
        return True

    def _issue_code(self, args: dict[str, str], username: str, sid: str) -> None:
        code = secrets.token_urlsafe(32)
        self.st.codes.put(
            code,
            {
                "username": username,
                "sid": sid,
                "client_id": args["client_id"],
                "redirect_uri": args["redirect_uri"],
                "challenge": args["code_challenge"],
                "nonce": args.get("nonce"),
                "scope": args.get("scope", "openid"),
            },
            CODE_TTL,
        )
        params = {"code": code}
        if args.get("state"):
            params["state"] = args["state"]
        self.redirect(_with_query(args["redirect_uri"], params))

    def _render(self, args: dict[str, str], error: str = "") -> None:
        # Login CSRF: the form carries a nonce that must match a cookie this page set, so a
        # cross-site page cannot post its own credentials into the victim's browser session.
        nonce = secrets.token_urlsafe(24)
        self.set_signed_cookie(
            LOGIN_CSRF_COOKIE, nonce, httponly=True, samesite="Lax", expires_days=None
        )
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.finish(
            LOGIN_PAGE.format(
                error=html.escape(error),
                action=html.escape(self.request.path),
                request=html.escape(urlencode({**args, CSRF_PARAM: nonce})),
            )
        )

    def get(self) -> None:
        args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        if self._validated_request(args) is None or not self._check_params(args):
            return
        sid = self.get_signed_cookie(SESSION_COOKIE)
        session = self.st.sessions.take(sid.decode()) if sid else None
        if session and sid and args.get("prompt") != "login":
            self._issue_code(args, session["username"], sid.decode())
            return
        self._render(args)

    def post(self) -> None:
        args = dict(parse_qsl(self.get_body_argument("request", "")))
        sent = args.pop(CSRF_PARAM, "")
        if self._validated_request(args) is None or not self._check_params(args):
            return
        expected = (self.get_signed_cookie(LOGIN_CSRF_COOKIE, max_age_days=1) or b"").decode()
        if not expected or not secrets.compare_digest(expected, sent):
            self.set_status(403)
            self._render(
                args,
                "This sign-in form has expired or was not sent from this page; "
                "please sign in again.",
            )
            return
        username = self.get_body_argument("username", "")[:200]
        password = self.get_body_argument("password", "")
        client = self.request.remote_ip or "?"
        wait = self.st.locked(username, client)
        if wait > 0:
            self.set_status(429)
            self.set_header("Retry-After", str(int(wait) + 1))
            self._render(args, f"Too many failed sign-ins; try again in {int(wait) + 1} s.")
            return
        user = self.st.config.users.get(username)
        if user is None or not secrets.compare_digest(user.password, password):
            self.st.failed(username, client)
            self.set_status(401)
            self._render(args, "Invalid username or password.")
            return
        self.clear_cookie(LOGIN_CSRF_COOKIE)
        sid = secrets.token_urlsafe(16)
        self.st.sessions.put(sid, {"username": username}, REFRESH_TTL)
        self.set_signed_cookie(
            SESSION_COOKIE, sid, httponly=True, samesite="Lax", expires_days=None
        )
        self._issue_code(args, username, sid)


class Token(_Base):
    def check_xsrf_cookie(self) -> None:  # machine-to-machine endpoint
        return

    def _client_ok(self) -> bool:
        cfg = self.st.config
        client_id = secret = None
        auth = self.request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                raw = base64.b64decode(auth[6:]).decode()
                from urllib.parse import unquote

                client_id, _, secret = (unquote(p) for p in raw.partition(":"))
            except ValueError:
                return False
        else:
            client_id = self.get_body_argument("client_id", None)
            secret = self.get_body_argument("client_secret", None)
        return bool(
            client_id == cfg.client_id
            and secret is not None
            and secrets.compare_digest(secret, cfg.client_secret)
        )

    def post(self) -> None:
        if not self._client_ok():
            self.set_header("WWW-Authenticate", 'Basic realm="token"')
            self.oauth_error(401, "invalid_client", "client authentication failed")
            return
        grant = self.get_body_argument("grant_type", "")
        if grant == "authorization_code":
            self._code()
        elif grant == "refresh_token":
            self._refresh()
        else:
            self.oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} not supported")

    def _code(self) -> None:
        code = self.get_body_argument("code", "")
        entry = self.st.codes.take(code, pop=True)  # single use, even when the checks fail
        if entry is None:
            self.oauth_error(400, "invalid_grant", "authorization code unknown, used or expired")
            return
        if self.get_body_argument("redirect_uri", None) != entry["redirect_uri"]:
            self.oauth_error(
                400, "invalid_grant", "redirect_uri does not match the authorization request"
            )
            return
        verifier = self.get_body_argument("code_verifier", None)
        if not verifier:
            self.oauth_error(400, "invalid_grant", "PKCE code_verifier missing")
            return
        if not (43 <= len(verifier) <= 128) or not secrets.compare_digest(
            s256(verifier), entry["challenge"]
        ):
            self.oauth_error(
                400, "invalid_grant", "PKCE code_verifier does not match the code_challenge"
            )
            return
        if self.st.sessions.take(entry["sid"]) is None:
            self.oauth_error(400, "invalid_grant", "the login session has ended")
            return
        self.set_header("Cache-Control", "no-store")
        self.finish(
            self.st.issue_tokens(entry["username"], entry["sid"], entry["scope"], entry["nonce"])
        )

    def _refresh(self) -> None:
        token = self.get_body_argument("refresh_token", "")
        entry = self.st.refresh.take(token, pop=True)  # rotation: the old one is spent
        if entry is None or self.st.sessions.take(entry["sid"]) is None:
            self.oauth_error(
                400, "invalid_grant", "refresh token unknown, used, expired or session ended"
            )
            return
        self.set_header("Cache-Control", "no-store")
        self.finish(self.st.issue_tokens(entry["username"], entry["sid"], entry["scope"], None))


class UserInfo(_Base):
    def check_xsrf_cookie(self) -> None:
        return

    def _answer(self) -> None:
        auth = self.request.headers.get("Authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        entry = self.st.access.take(token)
        if entry is None:
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Bearer error="invalid_token"')
            self.finish(
                {"error": "invalid_token", "error_description": "access token unknown or expired"}
            )
            return
        self.finish(self.st.config.users[entry["username"]].claims())

    get = _answer
    post = _answer


class Logout(_Base):
    """RP-initiated logout: ends the provider session and revokes its tokens."""

    def get(self) -> None:
        cfg = self.st.config
        target = self.get_query_argument("post_logout_redirect_uri", None)
        if target and target not in cfg.post_logout_redirect_uris:
            self.bad_request_page("post_logout_redirect_uri is not registered")
            return
        sid = self.get_signed_cookie(SESSION_COOKIE)
        if sid:
            self.st.end_session(sid.decode())
        hint = self.get_query_argument("id_token_hint", None)
        if hint:
            try:
                tok = jwt.decode(hint, self.st.key, algorithms=["RS256"])
                if tok.claims.get("sid"):
                    self.st.end_session(tok.claims["sid"])
            except Exception:  # an unusable hint ends nothing more; still log out the cookie
                pass
        self.clear_cookie(SESSION_COOKIE)
        if target:
            state = self.get_query_argument("state", None)
            self.redirect(_with_query(target, {"state": state} if state else {}))
        else:
            self.finish("<h1>Signed out of MyST (development provider)</h1>")


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlparse(url)
    query = parse_qsl(parts.query) + list(params.items())
    return urlunparse(parts._replace(query=urlencode(query)))


def _cookie_secret(state_dir: Path | None) -> str:
    if state_dir is None:
        return secrets.token_hex(32)
    path = state_dir / "oidc-cookie-secret"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def make_app(config: ProviderConfig) -> web.Application:
    """The tornado application; routes are relative to the issuer's path."""
    prefix = urlparse(config.issuer).path.rstrip("/")
    state = State(config)
    return web.Application(
        [
            (rf"{prefix}/\.well-known/openid-configuration", Discovery),
            (rf"{prefix}/jwks", Jwks),
            (rf"{prefix}/authorize", Authorize),
            (rf"{prefix}/token", Token),
            (rf"{prefix}/userinfo", UserInfo),
            (rf"{prefix}/logout", Logout),
        ],
        cookie_secret=_cookie_secret(config.state_dir),
        oidc_state=state,
    )
