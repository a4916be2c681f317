"""``roman-platform quota``: allocations, tiers, teams and usage for operators, over the service API.

Every command (except ``migrate``) goes through the quota service's REST API with a hub token, so
the CLI is authorized exactly like the web pages: what an operator may do depends on their hub
account, not on having the database at hand.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "quota",
        help="allocations, tiers, teams and usage (quota service API)",
        description="Talk to the quota service. URL from --url or $ROMAN_QUOTA_URL "
        "(e.g. http://127.0.0.1:8000/services/quota/), token from --token or "
        "$JUPYTERHUB_API_TOKEN (a hub API token of yours).",
    )
    p.add_argument("--url", help="quota service URL")
    p.add_argument("--token", help="hub API token (default $JUPYTERHUB_API_TOKEN)")
    sub = p.add_subparsers(dest="quota_command", metavar="ACTION", required=True)

    sub.add_parser("me", help="your tier, teams, allocation and usage")
    s = sub.add_parser("team", help="a team's allocation, members and usage")
    s.add_argument("team", help="team name")
    s = sub.add_parser("create-team", help="create a team (platform admins)")
    s.add_argument("name", help="team name (lower case letters, digits, -)")
    s.add_argument("--description", default="", help="what the team works on")
    s = sub.add_parser("add-member", help="add a hub user to a team")
    s.add_argument("team", help="team name")
    s.add_argument("username", help="hub user name")
    s.add_argument("--admin", action="store_true", help="as team admin (platform admins only)")
    s = sub.add_parser("remove-member", help="remove a user from a team")
    s.add_argument("team", help="team name")
    s.add_argument("username", help="hub user name")
    s = sub.add_parser("set-cap", help="cap a member inside the team allocation")
    s.add_argument("team", help="team name")
    s.add_argument("username", help="hub user name")
    s.add_argument("--core-hours", type=float, help="most core-hours the member may use per period")
    s.add_argument("--gpu-hours", type=float, help="most GPU-hours the member may use per period")
    s = sub.add_parser("grant", help="grant a tier (platform admins)")
    s.add_argument("username", help="hub user name")
    s.add_argument("tier", help="tier name from the policy (e.g. research, team)")
    s.add_argument("--expires", help="ISO date the grant ends")
    s = sub.add_parser("revoke", help="revoke a user's tier grant (platform admins)")
    s.add_argument("username", help="hub user name")
    s = sub.add_parser("allocate", help="create an allocation (platform admins)")
    owner = s.add_mutually_exclusive_group(required=True)
    owner.add_argument("--user", help="a personal allocation for this user")
    owner.add_argument("--team", help="an allocation for this team")
    s.add_argument("--core-hours", type=float, required=True, help="core-hours for the period")
    s.add_argument(
        "--gpu-hours", type=float, default=0, help="GPU-hours for the period (default 0)"
    )
    s.add_argument("--home-gb", type=float, default=0, help="home storage in GB (default 0)")
    s.add_argument("--scratch-gb", type=float, default=0, help="scratch storage in GB (default 0)")
    s.add_argument("--start", help="ISO date (default now)")
    s.add_argument("--end", required=True, help="ISO date the period ends")
    sub.add_parser("requests", help="pending requests (admins) or your own")
    s = sub.add_parser("request", help="request a tier or a renewal")
    s.add_argument(
        "kind", choices=["tier", "renewal"], help="a higher tier, or the renewal of an allocation"
    )
    s.add_argument("--justification", required=True, help="why (the approving admin reads it)")
    s.add_argument("--tier", help="the tier asked for (kind tier)")
    s.add_argument("--team", help="renew this team's allocation (team admins)")
    s = sub.add_parser("decide", help="approve or decline a request (platform admins)")
    s.add_argument("request_id", type=int, help="request number (see: quota requests)")
    s.add_argument("decision", choices=["approve", "decline"], help="approve or decline")
    s.add_argument("--note", default="", help="note to the requester")
    s = sub.add_parser("usage", help="all usage per user and team (platform admins)")
    s.add_argument("--start", help="ISO date the report starts (default: 31 days ago)")
    s.add_argument("--end", help="ISO date the report ends (default now)")
    s.add_argument("--csv", action="store_true", help="CSV instead of JSON")
    s = sub.add_parser("audit", help="the newest audit log entries (platform admins)")
    s.add_argument("--limit", type=int, default=50, help="how many entries (default 50)")
    s = sub.add_parser(
        "migrate", help="create/upgrade the quota database schema (no service needed)"
    )
    s.add_argument("--db-url", required=True, help="SQLAlchemy URL of the quota database")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.quota_command == "migrate":
        from hub_config.quota.storage.db import current_revision, upgrade

        upgrade(args.db_url)
        print(f"quota database at revision {current_revision(args.db_url)}")
        return 0
    from platform_lib.quota_client import AccountError, QuotaClient

    try:
        c = QuotaClient(args.url, args.token)
        out = _dispatch(c, args)
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if isinstance(out, str):
        sys.stdout.write(out)
    elif out is not None:
        print(json.dumps(out, indent=2, default=str))
    return 0


def _dispatch(c, a: argparse.Namespace):
    cmd = a.quota_command
    if cmd == "me":
        return c.get("api/me")
    if cmd == "team":
        return c.get(f"api/teams/{a.team}")
    if cmd == "create-team":
        return c.call("POST", "api/teams", {"name": a.name, "description": a.description})
    if cmd == "add-member":
        return c.call(
            "POST",
            f"api/teams/{a.team}/members",
            {"username": a.username, "role": "admin" if a.admin else "member"},
        )
    if cmd == "remove-member":
        return c.call("DELETE", f"api/teams/{a.team}/members/{a.username}")
    if cmd == "set-cap":
        return c.call(
            "PUT",
            f"api/teams/{a.team}/members/{a.username}/cap",
            {"core_hours": a.core_hours, "gpu_hours": a.gpu_hours},
        )
    if cmd == "grant":
        return c.call("PUT", f"api/tiers/{a.username}", {"tier": a.tier, "expires_at": a.expires})
    if cmd == "revoke":
        return c.call("DELETE", f"api/tiers/{a.username}")
    if cmd == "allocate":
        return c.call(
            "POST",
            "api/allocations",
            {
                "user": a.user,
                "team": a.team,
                "core_hours": a.core_hours,
                "gpu_hours": a.gpu_hours,
                "home_gb": a.home_gb,
                "scratch_gb": a.scratch_gb,
                "period_start": a.start,
                "period_end": a.end,
            },
        )
    if cmd == "requests":
        return c.get("api/requests")
    if cmd == "request":
        return c.call(
            "POST",
            "api/requests",
            {"kind": a.kind, "justification": a.justification, "tier": a.tier, "team": a.team},
        )
    if cmd == "decide":
        return c.call(
            "POST",
            f"api/requests/{a.request_id}/decision",
            {"approve": a.decision == "approve", "note": a.note},
        )
    if cmd == "usage":
        if a.csv:
            return c.call("GET", "api/usage.csv", params={"start": a.start, "end": a.end}, raw=True)
        return c.get("api/usage", start=a.start, end=a.end)
    if cmd == "audit":
        return c.get("api/audit", limit=a.limit)
    raise AssertionError(cmd)
