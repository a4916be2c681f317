"""Run GAVO DaCHS's server with the viewer of each TAP query known to PostgreSQL.

Runs under Debian's ``/usr/bin/python3`` (where ``python3-gavo`` lives), not the platform's venv,
so it imports nothing from the platform. DaCHS runs every ADQL query on a connection of its
``untrusted`` role and has no notion of per-row visibility; the platform's products table has a
PostgreSQL row-level security policy that reads ``roman.viewer`` and ``roman.teams`` from the
session. This launcher sets both on the query's connection, from the HTTP basic-auth user of a
synchronous TAP request *only if DaCHS verifies the credentials* (``creds.hasCredentials``) and
from that user's DaCHS groups (the platform's teams). Anything else (no or wrong credentials) sets
an empty viewer: public rows only, so the policy fails closed.

Asynchronous jobs run in a process of their own (DaCHS's ``gavo taprun <job>``), after the request
that made them is gone. DaCHS records a job's owner only when the creating request's credentials
verified (``getAuthUser``), and lets nobody else read, run or delete the job. So the server here
starts ``python3 dachs_serve.py taprun <job>`` instead, which runs DaCHS's own runner with the
viewer set to the job's recorded owner and that owner's groups as they are when the job runs; a
job without an owner sees public rows.

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

    from gavo.protocols import tap

    def getCommandLine(self, wjob):
        # the async runner: this file again, so the job runs as its owner (run_async below)
        return sys.executable, [sys.executable, __file__, "taprun", str(wjob.jobId)]

    tap.TAPTransitions.getCommandLine = getCommandLine


def _owner_teams(owner: str) -> str:
    """The owner's DaCHS groups (the platform's teams) now, read with DaCHS's admin profile."""
    from gavo import base

    with base.getAdminConn() as conn:
        rows = conn.query("SELECT groupname FROM dc.groups WHERE username = %(u)s", {"u": owner})
        return ",".join(sorted(g for (g,) in rows if g != owner))


def run_async(job_id: str) -> None:
    """DaCHS's async runner for one job, the viewer being the job's verified owner."""
    from gavo.protocols import taprunner

    get_table = taprunner.getQTableFromJob

    def getQTableFromJob(parameters, job, queryProfile, timeout):
        owner = job.owner or ""
        _viewer.name, _viewer.teams = owner, _owner_teams(owner) if owner else ""
        try:
            return get_table(parameters, job, queryProfile, timeout)
        finally:
            _viewer.name = _viewer.teams = ""

    taprunner.getQTableFromJob = getQTableFromJob
    sys.argv = ["taprun", job_id]
    taprunner.main()


def main() -> None:
    _install()
    if sys.argv[1:2] == ["taprun"] and len(sys.argv) == 3:
        run_async(sys.argv[2])
        return
    from gavo.user import cli

    sys.argv = ["dachs", "serve", "debug"]
    cli.main()


if __name__ == "__main__":
    main()
