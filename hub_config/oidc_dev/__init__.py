"""A development OpenID Connect provider for the local platform and the tests.

It verifies what production providers verify (client secret, exact redirect URI, PKCE S256,
single-use short-lived codes, signed ID tokens, refresh-token rotation, end-session), so the hub's
login code path is the production one. It only ever binds to a loopback address, and the Helm
chart has no setting that can start it: a deployment points the hub at its real broker (CILogon,
Keycloak, Cognito in front of MyST) instead. Run it as ``python -m hub_config.oidc_dev --help``.
"""

from hub_config.oidc_dev.provider import ProviderConfig, make_app
from hub_config.oidc_dev.users import DemoUser, load_users

__all__ = ["DemoUser", "ProviderConfig", "load_users", "make_app"]
