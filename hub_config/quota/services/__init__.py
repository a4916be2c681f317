"""The service layer: what may be done to the quota records and what is charged.

The operations (:mod:`.tiers`, :mod:`.teams`, :mod:`.allocations`, :mod:`.requests`, the
:mod:`.views` the pages show, on :mod:`.common` ground) each take the acting user, check on the
server side that they may do it, validate their input, write the change and its audit entry in
the caller's transaction, and raise a :mod:`hub_config.quota.errors` exception otherwise. Beside
them: the usage :mod:`.ledger` and its :mod:`.sampler`, the spawn and cluster checks and the
grace-period stop (:mod:`.enforcement`), home storage measurement (:mod:`.home_storage`), tier
grants for the authenticator (:mod:`.grants`); the local platform's demo teams are
:mod:`hub_config.local.demo_teams`.

This package exports the operations, so callers write ``from hub_config.quota import services
as ops`` and ``ops.create_team(...)``. Handlers (HTTP), the CLI and the hub hooks call these;
these call only :mod:`hub_config.quota.storage`.
"""

from hub_config.quota.services.allocations import (
    allocation_dict,
    allocation_usage,
    create_allocation,
    current_allocation,
    effective_state,
    ensure_base_allocation,
    expire_due,
    renew,
)
from hub_config.quota.services.common import (
    MAX_JUSTIFICATION,
    Actor,
    Changes,
    audit,
    check_team_name,
    check_username,
    iso,
    known_user,
    membership,
    require_admin,
    require_team_admin,
    require_team_reader,
    team,
    team_exists,
    user,
)
from hub_config.quota.services.requests import (
    create_request,
    decide_request,
    invite,
    request_dict,
)
from hub_config.quota.services.teams import (
    add_member,
    create_team,
    remove_member,
    set_cap,
    sync_idp_teams,
)
from hub_config.quota.services.tiers import (
    grant_tier,
    granted_tier,
    profile_costs,
    revoke_tier,
    tier_of,
)
from hub_config.quota.services.views import (
    admin_view,
    all_usage,
    audit_log,
    me,
    requests_for,
    team_view,
)

__all__ = [
    "MAX_JUSTIFICATION",
    "Actor",
    "Changes",
    "add_member",
    "admin_view",
    "all_usage",
    "allocation_dict",
    "allocation_usage",
    "audit",
    "audit_log",
    "check_team_name",
    "check_username",
    "create_allocation",
    "create_request",
    "create_team",
    "current_allocation",
    "decide_request",
    "effective_state",
    "ensure_base_allocation",
    "expire_due",
    "grant_tier",
    "granted_tier",
    "invite",
    "iso",
    "known_user",
    "me",
    "membership",
    "profile_costs",
    "remove_member",
    "renew",
    "request_dict",
    "requests_for",
    "require_admin",
    "require_team_admin",
    "require_team_reader",
    "revoke_tier",
    "set_cap",
    "sync_idp_teams",
    "team",
    "team_exists",
    "team_view",
    "tier_of",
    "user",
]
