"""The development OIDC provider's state: its signing key, configuration, codes, tokens, sessions.

What the endpoints (:mod:`.provider`) check against lives here: single-use authorization codes,
access and refresh tokens, login sessions and failed-login counts, each in a bounded store
(:data:`MAX_ENTRIES`), persisted to the state folder so a restart keeps sessions and the key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import RSAKey

from hub_config.oidc_dev.users import DemoUser

CODE_TTL = 60.0
ACCESS_TTL = 600.0
REFRESH_TTL = 8 * 3600.0
SESSION_COOKIE = "oidc_dev_session"
LOGIN_CSRF_COOKIE = "oidc_dev_login_csrf"
CSRF_PARAM = "_login_csrf"  # carried inside the form's hidden 'request' field
#: Failed sign-ins allowed per username and per client address in FAIL_WINDOW seconds; more are
#: answered 429 until the window has passed (password guessing at 260/s was possible before).
MAX_FAILS_PER_USER = 5
MAX_FAILS_PER_CLIENT = 20
FAIL_WINDOW = 60.0
MAX_ENTRIES = 10000  # bound on stored codes/tokens/sessions: the oldest are dropped


@dataclass
class ProviderConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    users: dict[str, DemoUser] = field(default_factory=dict)
    state_dir: Path | None = None
    id_token_ttl: float = 600.0


def load_or_create_key(state_dir: Path | None) -> RSAKey:
    """The signing key: persisted in the state folder when given, so restarts keep sessions."""
    path = state_dir / "oidc-signing-key.json" if state_dir else None
    if path and path.exists():
        return RSAKey.import_key(json.loads(path.read_text()))
    kid = secrets.token_hex(8)
    key = RSAKey.generate_key(
        2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True
    )
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(key.as_dict(private=True)))
        path.chmod(0o600)
    return key


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


class _Store(dict):
    """A dict of expiring entries, bounded in size."""

    def put(self, key: str, value: dict, ttl: float) -> None:
        now = time.time()
        for k in [k for k, v in self.items() if v["expires"] < now]:
            del self[k]
        while len(self) >= MAX_ENTRIES:
            del self[next(iter(self))]
        self[key] = {**value, "expires": now + ttl}

    def take(self, key: str, pop: bool = False) -> dict | None:
        entry = self.pop(key, None) if pop else self.get(key)
        if entry is None or entry["expires"] < time.time():
            return None
        return entry


class State:
    def __init__(self, config: ProviderConfig):
        self.config = config
        self.key = load_or_create_key(config.state_dir)
        self.codes = _Store()
        self.access = _Store()
        self.refresh = _Store()
        self.sessions = _Store()
        self.failures: dict[str, list[float]] = {}
        self.load()

    def _recent(self, key: str, now: float) -> list[float]:
        times = [t for t in self.failures.get(key, []) if now - t < FAIL_WINDOW]
        if times:
            self.failures[key] = times
        else:
            self.failures.pop(key, None)
        return times

    def locked(self, username: str, client: str) -> float:
        """Seconds until another attempt is allowed (0: now)."""
        now = time.monotonic()
        waits = [
            FAIL_WINDOW - (now - times[0])
            for key, limit in (
                (f"user:{username}", MAX_FAILS_PER_USER),
                (f"ip:{client}", MAX_FAILS_PER_CLIENT),
            )
            if len(times := self._recent(key, now)) >= limit
        ]
        return max(waits, default=0.0)

    def failed(self, username: str, client: str) -> None:
        now = time.monotonic()
        if len(self.failures) > 10000:  # bounded memory under a spray of made-up names
            self.failures.clear()
        for key in (f"user:{username}", f"ip:{client}"):
            self.failures.setdefault(key, []).append(now)

    def sign_id_token(self, user: DemoUser, nonce: str | None, sid: str, access: str) -> str:
        now = int(time.time())
        claims = {
            **user.claims(),
            "iss": self.config.issuer,
            "aud": self.config.client_id,
            "azp": self.config.client_id,
            "iat": now,
            "auth_time": now,
            "exp": now + int(self.config.id_token_ttl),
            "sid": sid,
            "at_hash": base64.urlsafe_b64encode(hashlib.sha256(access.encode()).digest()[:16])
            .decode()
            .rstrip("="),
        }
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, self.key)

    def issue_tokens(self, username: str, sid: str, scope: str, nonce: str | None) -> dict:
        user = self.config.users[username]
        access = secrets.token_urlsafe(32)
        refresh = secrets.token_urlsafe(32)
        grant = {"username": username, "sid": sid, "scope": scope}
        self.access.put(access, grant, ACCESS_TTL)
        self.refresh.put(refresh, grant, REFRESH_TTL)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": int(ACCESS_TTL),
            "refresh_token": refresh,
            "id_token": self.sign_id_token(user, nonce, sid, access),
            "scope": scope,
        }

    # Sessions and tokens survive a restart of the provider (as a real provider's database
    # would), so a platform restart does not log everybody out. Written at shutdown, 0600.
    def _persist_path(self) -> Path | None:
        return self.config.state_dir / "oidc-sessions.json" if self.config.state_dir else None

    def save(self) -> None:
        path = self._persist_path()
        if path is None:
            return
        data = {"sessions": self.sessions, "access": self.access, "refresh": self.refresh}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.chmod(0o600)
        tmp.replace(path)

    def load(self) -> None:
        path = self._persist_path()
        if path is None or not path.exists():
            return
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # a damaged file only costs users a new login
        now = time.time()
        for name in ("sessions", "access", "refresh"):
            store = getattr(self, name)
            for key, entry in (data.get(name) or {}).items():
                if isinstance(entry, dict) and entry.get("expires", 0) > now:
                    if "username" not in entry or entry["username"] in self.config.users:
                        store[key] = entry

    def end_session(self, sid: str) -> None:
        self.sessions.pop(sid, None)
        for store in (self.access, self.refresh):
            for k in [k for k, v in store.items() if v.get("sid") == sid]:
                del store[k]
