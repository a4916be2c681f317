"""Run GAVO DaCHS's server with the viewer of each TAP query known to PostgreSQL.

Runs under Debian's ``/usr/bin/python3`` (where ``python3-gavo`` lives), not the platform's venv,
so it imports nothing from the platform. DaCHS runs every ADQL query on a connection of its
``untrusted`` role and has no notion of per-row visibility; the platform's products table has a
PostgreSQL row-level security policy that reads ``roman.viewer`` and ``roman.teams`` from the
session. This launcher sets both on the query's connection, from the HTTP basic-auth user of a
synchronous TAP request *only if DaCHS verifies the credentials* (``creds.hasCredentials``) and
from that user's DaCHS groups (the platform's teams). Anything else (no or wrong credentials,
async jobs, which DaCHS runs in other processes) sets an empty viewer: public rows only, so the
policy fails closed.

Usage: ``python3 dachs_serve.py`` with ``GAVOSETTINGS`` pointing at the instance's settings.
It sits next to :mod:`hub_config.tap.service`, whose ``TapService`` starts it by path
(``LAUNCHER``) in both set-ups: the one-machine supervisor's component and the chart's DaCHS pod.
"""

import sys
import threading

_viewer = threading.local()


def _install() -> None:
    import re

    from gavo import utils
    from gavo.protocols import creds, taprunner

    # DaCHS keeps an access_url that "looks like a URL" ([a-z]{2,5}://) and turns anything else
    # into a link to its own /getproduct: s3:// (a digit in the scheme) became
    # http://<dachs>/getproduct/s3%3A//..., a link nobody can use. Any RFC 3986 scheme is a URL.
    utils.looksLikeURLPat = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]{1,15}://")

    run_sync = taprunner.runSyncTAPJob
    note_pid = taprunner._noteWorkerPID

    def runSyncTAPJob(jobId, queryMeta=None):
        user = password = None
        if queryMeta is not None:
            user, password = queryMeta.get("user"), queryMeta.get("password")
        name, teams = "", ""
        if user and password and creds.hasCredentials(user, password, None):
            name = user
            teams = ",".join(sorted(g for g in creds.getGroupsForUser(user, password) if g != user))
        _viewer.name, _viewer.teams = name, teams
        try:
            return run_sync(jobId, queryMeta)
        finally:
            _viewer.name = _viewer.teams = ""

    def noteWorkerPID(conn):
        cursor = conn.cursor()
        cursor.execute(
            "SELECT set_config('roman.viewer', %(v)s, false),"
            " set_config('roman.teams', %(t)s, false)",
            {"v": getattr(_viewer, "name", ""), "t": getattr(_viewer, "teams", "")},
        )
        cursor.close()
        return note_pid(conn)

    taprunner.runSyncTAPJob = runSyncTAPJob
    taprunner._noteWorkerPID = noteWorkerPID


def main() -> None:
    _install()
    from gavo.user import cli

    sys.argv = ["dachs", "serve", "debug"]
    cli.main()


if __name__ == "__main__":
    main()
