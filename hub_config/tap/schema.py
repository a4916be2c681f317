"""What the TAP service serves and who sees it: DaCHS's resource descriptor, the row policy.

DaCHS publishes what a resource descriptor (RD) declares: ``roman/q`` makes ``roman.products``
(ObsCore columns plus the platform's own, a GiST index on the footprint) and puts it into
``ivoa.obscore``. PostgreSQL then decides what a viewer sees: row-level security on
``roman.products`` (public rows, the viewer's own and the viewer's teams' ``team`` rows), a
``security_invoker`` view so the policy holds through ``ivoa.obscore``, and pgSphere's comparison
functions marked LEAKPROOF so a footprint condition still uses the index under the policy. These
are text DaCHS and PostgreSQL read, kept apart from the processes that read them
(:mod:`hub_config.tap.service`) so the schema can be read, and changed, in one place.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import pwd
from pathlib import Path

__all__ = [
    "DEFAULT_MAXREC",
    "HARD_MAXREC",
    "JOB_LIFETIME_S",
    "MAX_RUNNING_JOBS",
    "RD_NAME",
    "RESOURCE_DESCRIPTOR",
    "VISIBILITY_POLICY",
    "DACHS_PROFILES",
    "TapError",
    "dachs_hash",
    "dachs_settings",
]

RD_NAME = "roman/q"
#: rows a query returns unless it asks for more (MAXREC); the hard ceiling stops runaway queries
DEFAULT_MAXREC = 20000
HARD_MAXREC = 2_000_000
#: how long DaCHS keeps an async job and its result (UWS destruction time), seconds
JOB_LIFETIME_S = 86400
#: TAP jobs DaCHS runs at once (async and sync together); more wait in the queue
MAX_RUNNING_JOBS = 4


class TapError(RuntimeError):
    """The TAP service could not be set up or refused an operation; the message says why."""


#: the RD ``roman/q``: the products table DaCHS creates, imports and publishes into ObsCore
RESOURCE_DESCRIPTOR = """<resource schema="roman">
  <meta name="title">Roman science platform products</meta>
  <meta name="description">Every product of the platform's store (L1-L4 survey products and
    L5 community products) with its footprint, epoch, band and where to read it.</meta>
  <meta name="creationDate">2026-12-02T00:00:00</meta>
  <meta name="subject">Roman Space Telescope</meta>
  <meta name="creator.name">Roman science platform</meta>
  <table id="products" onDisk="True" adql="True" primary="obs_publisher_did">
    <meta name="description">Platform products in ObsCore form with the platform's columns.
      Rows are visible by their visibility: public, the owner's, the team's.</meta>
    <mixin>//obscore#publishObscoreLike</mixin>
    <FEED source="//obscore#obscore-columns"/>
    <column name="roman_level" type="text" description="Platform level (L1-L5, PSF)"/>
    <column name="optical_element" type="text" description="WFI optical element"/>
    <column name="detector" type="text" description="WFI detector (WFI01-WFI18)"/>
    <column name="product_path" type="text" description="Path of the product in its store"/>
    <column name="visibility" type="text" description="public, team or private"/>
    <column name="owner_name" type="text" description="Hub user who published an L5 product"/>
    <column name="team" type="text" description="Team an L5 product is shared with"/>
    <column name="licence" type="text" description="Licence of an L5 product (SPDX id)"/>
    <index columns="s_region" method="GIST"/>
    <index columns="t_min"/>
    <index columns="roman_level"/>
  </table>
  <data id="import"><make table="products"/></data>
</resource>
"""

#: what the query role may see of roman.products (the table owner, which feeds it, sees all)
VISIBILITY_POLICY = """
ALTER TABLE roman.products ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS visible ON roman.products;
CREATE POLICY visible ON roman.products FOR SELECT USING (
  visibility = 'public'
  OR (owner_name IS NOT NULL AND owner_name = NULLIF(current_setting('roman.viewer', true), ''))
  OR (visibility = 'team' AND team = ANY(string_to_array(
        NULLIF(current_setting('roman.teams', true), ''), ',')))
);
ALTER VIEW ivoa.obscore SET (security_invoker = true);
-- Under row-level security PostgreSQL applies a query's conditions only after the policy unless
-- their functions are LEAKPROOF, so a footprint condition could not use the GiST index (a 1e5
-- cone took 3 s instead of 5 ms). pgSphere's comparison functions reveal nothing beyond their
-- boolean result, so they are marked LEAKPROOF (the server is the platform's own).
DO $$
DECLARE f regprocedure;
BEGIN
  FOR f IN SELECT DISTINCT o.oprcode::regprocedure FROM pg_operator o
           JOIN pg_type l ON l.oid = o.oprleft JOIN pg_type r ON r.oid = o.oprright
           WHERE (l.typname IN ('spoint', 'scircle', 'spoly', 'sbox', 'sline', 'spath', 'sellipse')
              OR r.typname IN ('spoint', 'scircle', 'spoly', 'sbox', 'sline', 'spath', 'sellipse'))
             AND o.oprresult = 'boolean'::regtype
  LOOP
    EXECUTE format('ALTER FUNCTION %s LEAKPROOF', f);
  END LOOP;
END $$;
CREATE TABLE IF NOT EXISTS roman.removals (
  obs_publisher_did text NOT NULL, product_path text, owner_name text,
  removed_by text NOT NULL, reason text, removed_at timestamptz NOT NULL DEFAULT now());
"""


def dachs_settings(
    root: Path,
    *,
    log_dir: Path,
    port: int,
    default_maxrec: int,
    bind: str = "127.0.0.1",
    server_url: str | None = None,
    job_lifetime: int = JOB_LIFETIME_S,
    max_running: int = MAX_RUNNING_JOBS,
) -> str:
    """DaCHS's ``gavo.rc`` for an instance under ``root``: this account's user, loopback unless
    ``bind`` says otherwise (in a pod: all addresses, the NetworkPolicy decides who reaches it);
    ``server_url`` is the address DaCHS writes into its documents (the proxy rewrites it).
    Async results live in DaCHS's folder until ``job_lifetime`` (a pod's folder is a sized
    volume, so the lifetime and ``max_running`` are what bound it together with MAXREC)."""
    return (
        "[general]\n"
        f"rootDir: {root / 'dachs'}\n"
        f"group: {grp.getgrgid(os.getgid()).gr_name}\n"
        f"logDir: {log_dir}\n"
        "[web]\n"
        f"bindAddress: {bind}\n"
        f"serverPort: {port}\n"
        f"serverURL: {server_url or f'http://127.0.0.1:{port}'}\n"
        f"user: {pwd.getpwuid(os.getuid()).pw_name}\n"
        "[async]\n"
        f"defaultMAXREC: {default_maxrec}\n"
        f"hardMAXREC: {HARD_MAXREC}\n"
        f"defaultLifetime: {int(job_lifetime)}\n"
        f"maxTAPRunning: {int(max_running)}\n"
    )


#: DaCHS's database profiles (``<rootDir>/etc/<name>``): the role each one logs in as
DACHS_PROFILES = {"feed": "gavoadmin", "trustedquery": "gavo", "untrustedquery": "untrusted"}


def dachs_hash(password: str) -> str:
    """DaCHS's own password hash format (gavo.protocols.creds.hashPassword)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=4, r=8, p=1)
    return "scrypt:" + base64.b64encode(salt + digest).decode("ascii")
