"""Attack 3: a kernel or Dask worker of one user reads another user's home or the platform's
secrets and databases.

The security suite's platform runs with per-user system accounts where the tests run as root
(as CI does; hub_config/local/accounts.py). Bob's server writes a file into his home; alice's
kernel, and then her Dask scheduler and worker, try to read it by its exact path, to list the
state folder, and to read every file the platform keeps in it (secrets, the hub, quota and
gateway databases, the settings file, SeaweedFS's keys). They also look for any platform secret
on the command line or in the environment of any process on the machine. Without root the
platform falls back to single-account mode, and the test checks that the banner says so.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="per-user system accounts need root (CI runs as root)"
)

PROBE = r"""
import json, os, pwd, glob
targets = json.loads(TARGETS)
out = {"uid": os.getuid(), "euid": os.geteuid(), "account": pwd.getpwuid(os.getuid()).pw_name,
       "home": os.environ.get("HOME"), "cwd": os.getcwd(), "read": [], "refused": []}
for path in targets:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as fh:
                fh.read(1)
        out["read"].append(path)
    except OSError as exc:
        out["refused"].append([path, type(exc).__name__])
# every process's command line and environment, looking for any platform secret
secrets = json.loads(SECRETS)
leaks = []
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    for part in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{part}", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        for name, value in secrets.items():
            if value.encode() in data:
                leaks.append([pid, part, name])
out["leaks"] = leaks
print(json.dumps(out))
"""


def _targets(qp, victim: str) -> list[str]:
    """Everything in the state folder that is not the attacker's own, listed as root sees it."""
    state = Path(qp.state)
    found = [str(state), str(state / "users"), str(state / "users" / victim)]
    for p in sorted(state.rglob("*")):
        rel = p.relative_to(state)
        if rel.parts[0] in ("users", "runtime-src") or not p.is_file():
            continue
        if rel.parts[0] == "gateway" and "clusters" in rel.parts:
            continue  # the users' own Dask working folders
        found.append(str(p))
    found.append(str(state / "users" / victim / "bobs-notes.txt"))
    return found


def _secrets(qp) -> dict[str, str]:
    """The secret values the platform holds (files under secrets/, the settings' tokens)."""
    state = Path(qp.state)
    values = {
        f"secrets/{p.name}": p.read_text().strip()
        for p in (state / "secrets").iterdir()
        if p.is_file() and len(p.read_text().strip()) >= 16
    }
    s = qp.settings
    values["proxy auth token"] = s["proxy"]["auth_token"]
    values["gateway api token"] = s["gateway"]["api_token"]
    values["gateway proxy token"] = s["gateway"]["proxy_token"]
    return values


def _kernel(qp, user: str, code: str) -> dict:
    out = qp.helpers.run_in_kernel(f"{qp.url}/user/{user}/", qp.token(user), code, timeout=240)
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def servers(quota_platform):
    qp = quota_platform
    if qp.settings.get("accounts", {}).get("mode") != "system":
        pytest.skip("the platform runs in single-account mode (see test_mode_is_labelled)")
    started = []
    try:
        for user in ("alice", "bob"):
            r = qp.hub(user, "POST", f"users/{user}/server", json={"profile": "small"})
            assert r.status_code in (201, 202), r.text
            started.append(user)
        for user in started:
            qp.helpers.wait_for_server(qp.url, user, qp.token(user), ready=True, timeout=300)
        out = qp.helpers.run_in_kernel(
            f"{qp.url}/user/bob/",
            qp.token("bob"),
            "import os\nopen(os.path.expanduser('~/bobs-notes.txt'), 'w').write('private')\n"
            "print(os.path.expanduser('~'))",
        )
        assert out.strip().endswith("/users/bob"), out
        yield qp
    finally:
        for user in started:
            qp.hub(user, "DELETE", f"users/{user}/server")
        for user in started:
            qp.helpers.wait_for_server(qp.url, user, qp.token(user), ready=False, timeout=120)


def test_mode_is_labelled(quota_platform):
    """Root: the banner names the per-user accounts; otherwise it says single-account mode and
    why, and the platform's settings record the same."""
    qp = quota_platform
    banner = "\n".join(qp.running.output)
    accounts = qp.settings["accounts"]
    if os.geteuid() == 0:
        assert accounts["mode"] == "system", accounts
        assert "one system account per user (roman-<name>" in banner, banner[-2000:]
        assert "SINGLE-ACCOUNT MODE" not in banner
    else:
        assert accounts["mode"] == "shared" and accounts["reason"] == "not running as root"
        assert "SINGLE-ACCOUNT MODE (not running as root)" in banner, banner[-2000:]


@needs_root
def test_each_server_runs_as_its_users_account(servers):
    qp = servers
    for user in ("alice", "bob"):
        out = _kernel(qp, user, "TARGETS = '[]'\nSECRETS = '{}'\n" + PROBE)
        entry = pwd.getpwnam(f"roman-{user}")
        assert (out["uid"], out["euid"], out["account"]) == (entry.pw_uid,) * 2 + (entry.pw_name,)
        assert entry.pw_uid != 0 and entry.pw_gecos.startswith("roman-platform user")
        home = Path(qp.state) / "users" / user
        assert out["home"] == out["cwd"] == str(home)
        st = home.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (entry.pw_uid, 0o700)


@needs_root
def test_a_kernel_cannot_read_another_home_or_the_platform_secrets(servers):
    qp = servers
    targets = _targets(qp, "bob")
    assert len(targets) > 10, targets  # secrets, databases, settings, logs are all tried
    secrets = _secrets(qp)
    code = f"TARGETS = {json.dumps(json.dumps(targets))}\nSECRETS = {json.dumps(json.dumps(secrets))}\n"
    out = _kernel(qp, "alice", code + PROBE)
    assert out["read"] == [], f"alice's kernel read {out['read']}"
    assert {p for p, _ in out["refused"]} == set(targets)
    assert out["leaks"] == [], f"platform secrets visible to alice: {out['leaks']}"


@needs_root
def test_dask_scheduler_and_workers_run_as_the_owner(servers, user_gateway):
    qp = servers
    targets = _targets(qp, "bob")
    secrets = _secrets(qp)
    root_owner = os.stat("/").st_uid
    gw = user_gateway(qp, "alice")
    cluster = gw.new_cluster()
    try:
        cluster.scale(1)
        client = cluster.get_client()
        client.wait_for_workers(1, timeout=180)
        code = (
            f"TARGETS = {json.dumps(json.dumps(targets))}\n"
            f"SECRETS = {json.dumps(json.dumps(secrets))}\n" + PROBE
        )

        def probe() -> dict:
            import contextlib
            import io

            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                exec(code, {})
            return json.loads(buf.getvalue())

        alice = pwd.getpwnam("roman-alice")
        results = [*client.run(probe).values(), client.run_on_scheduler(probe)]
        assert len(results) == 2
        for out in results:
            assert (out["uid"], out["account"]) == (alice.pw_uid, "roman-alice"), out
            assert out["home"] == str(Path(qp.state) / "users" / "alice")
            assert out["read"] == [], f"alice's Dask process read {out['read']}"
            assert out["leaks"] == [], out["leaks"]
        client.close()
    finally:
        cluster.shutdown()
        gw.close()
    # dask-gateway's own LocalBackend would have handed '/' to the cluster's owner
    assert os.stat("/").st_uid == root_owner == 0
