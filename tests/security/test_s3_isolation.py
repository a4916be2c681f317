"""Attacks 4 and 5: one admin S3 key for everyone, and SeaweedFS's filer open without credentials.

A real server of alice's starts; her kernel holds the environment the spawner gave it and tries
to delete bob's object, write the survey, and read bob's space; the filer's and volume server's
HTTP ports are tried without credentials. Everything must be refused, while her own prefix and
the survey (read) work.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import requests
import s3fs

from hub_config.local.seaweedfs_platform import PLATFORM_BUCKET, WORK_BUCKET


def _platform_fs(qp) -> s3fs.S3FileSystem:
    env = qp.settings["singleuser"]["environment"]
    return s3fs.S3FileSystem(
        skip_instance_cache=True,
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": env["ROMAN_DATA_S3_ENDPOINT"], "region_name": "us-east-1"},
    )


@pytest.fixture(scope="module")
def alice_server(quota_platform):
    qp = quota_platform
    fs = _platform_fs(qp)
    fs.pipe(f"{WORK_BUCKET}/users/bob/result.txt", b"bob's result")
    fs.pipe(f"{PLATFORM_BUCKET}/survey/L2/file.txt", b"survey data")
    r = qp.hub("alice", "POST", "users/alice/server", json={"profile": "small"})
    assert r.status_code in (201, 202), r.text
    qp.helpers.wait_for_server(qp.url, "alice", qp.token("alice"), ready=True, timeout=300)
    try:
        yield qp, fs
    finally:
        qp.hub("alice", "DELETE", "users/alice/server")
        qp.helpers.wait_for_server(qp.url, "alice", qp.token("alice"), ready=False, timeout=120)


ATTACK = r"""
import json, os, s3fs
fs = s3fs.S3FileSystem(skip_instance_cache=True,
    client_kwargs={"endpoint_url": os.environ["ROMAN_DATA_S3_ENDPOINT"], "region_name": "us-east-1"})
out = {"key": os.environ["AWS_ACCESS_KEY_ID"], "user_url": os.environ["ROMAN_USER_STORE_URL"],
       "team_url": os.environ["ROMAN_TEAM_STORE_URL"]}
def attempt(name, f):
    try:
        f(); out[name] = "allowed"
    except Exception as e:
        out[name] = type(e).__name__
attempt("delete_bob", lambda: fs._call_s3 and fs.rm_file("WORK/users/bob/result.txt"))
attempt("read_bob", lambda: fs.cat("WORK/users/bob/result.txt"))
attempt("list_bob", lambda: fs.ls("WORK/users/bob/", refresh=True))
attempt("write_bob", lambda: fs.pipe("WORK/users/bob/evil.txt", b"x"))
attempt("write_survey", lambda: fs.pipe("SURVEY/survey/L2/evil.txt", b"x"))
attempt("delete_survey", lambda: fs.rm_file("SURVEY/survey/L2/file.txt"))
attempt("read_survey", lambda: fs.cat("SURVEY/survey/L2/file.txt"))
attempt("write_own", lambda: fs.pipe(os.environ["ROMAN_USER_STORE_URL"] + "mine.txt", b"mine"))
attempt("read_own", lambda: fs.cat(os.environ["ROMAN_USER_STORE_URL"] + "mine.txt"))
attempt("create_bucket", lambda: fs.mkdir("alices-own-bucket"))
# the platform's own store API on her spaces: an empty prefix lists as empty (S3 refuses a HEAD
# of the bare prefix to her key, which once surfaced as 'access denied'), a full one lists
from platform_lib.data import get_store
own = get_store(os.environ["ROMAN_USER_STORE_URL"])
attempt("walk_own_empty", lambda: own.walk_files("fresh") == {} or 1 / 0)
attempt("walk_own", lambda: "mine.txt" in own.walk_files("") or 1 / 0)
attempt("walk_bob", lambda: get_store("s3://WORK/users/bob/").walk_files(""))
attempt("check_own", lambda: own.check())  # build_index's first step
print(json.dumps(out))
""".replace("WORK", WORK_BUCKET).replace("SURVEY", PLATFORM_BUCKET)


def test_alice_cannot_delete_bobs_object_or_write_the_survey(alice_server):
    qp, fs = alice_server
    out = json.loads(qp.helpers.run_in_kernel(f"{qp.url}/user/alice/", qp.token("alice"), ATTACK))
    platform_key = qp.settings["singleuser"]["environment"]["AWS_ACCESS_KEY_ID"]
    assert out["key"] != platform_key  # her own key, not the platform's
    assert out["user_url"] == f"s3://{WORK_BUCKET}/users/alice/"
    assert out["team_url"] == f"s3://{WORK_BUCKET}/teams/"
    for refused in (
        "delete_bob",
        "read_bob",
        "list_bob",
        "write_bob",
        "write_survey",
        "delete_survey",
        "create_bucket",
        "walk_bob",
    ):
        assert out[refused] != "allowed", (refused, out)
    for allowed in (
        "read_survey",
        "write_own",
        "read_own",
        "walk_own_empty",
        "walk_own",
        "check_own",
    ):
        assert out[allowed] == "allowed", (allowed, out)
    assert fs.cat(f"{WORK_BUCKET}/users/bob/result.txt") == b"bob's result"
    assert fs.cat(f"{PLATFORM_BUCKET}/survey/L2/file.txt") == b"survey data"
    assert not fs.exists(f"{PLATFORM_BUCKET}/survey/L2/evil.txt")


def test_seaweedfs_admin_ports_refuse_requests_without_credentials(quota_platform):
    """Attack 5: the master's, volume server's and filer's own HTTP ports answered list, read
    and write of every bucket to anyone. They now speak only HTTPS with a client certificate
    of the platform's CA (hub_config/local/seaweedfs_config.write_tls), and even with that
    certificate the filer wants a signed JWT."""
    qp = quota_platform
    ports = json.loads((qp.state / "seaweedfs" / "ports.json").read_text())
    tls = qp.state / "seaweedfs" / "tls"
    no_cert = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    with_cert = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    with_cert.load_cert_chain(str(tls / "weed.crt"), str(tls / "weed.key"))
    paths = [f"/buckets/{WORK_BUCKET}/users/bob/", f"/buckets/{WORK_BUCKET}/users/bob/result.txt"]
    for name in ("filer", "volume", "master"):
        for path in (*paths, "/", "/dir/assign"):
            with pytest.raises(urllib.error.HTTPError) as err:  # plain HTTP
                urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}{path}", timeout=10)
            assert err.value.code == 400, (name, path)
            with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
                urllib.request.urlopen(
                    f"https://127.0.0.1:{ports[name]}{path}", timeout=10, context=no_cert
                )
    for path in paths:  # the platform's certificate alone is not enough on the filer
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(
                f"https://127.0.0.1:{ports['filer']}{path}", timeout=10, context=with_cert
            )
        assert err.value.code == 401, path
    req = urllib.request.Request(
        f"https://127.0.0.1:{ports['filer']}/buckets/{WORK_BUCKET}/x.txt", data=b"x", method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10, context=with_cert)
    assert err.value.code == 401
    # the S3 API without a signature is refused too
    r = requests.get(
        f"http://127.0.0.1:{ports['s3']}/{WORK_BUCKET}/users/bob/result.txt", timeout=10
    )
    assert r.status_code == 403


def _weed_shell(qp, commands: str, cwd: Path, timeout: float) -> str:
    ports = json.loads((qp.state / "seaweedfs" / "ports.json").read_text())
    weed = Path(sys.executable).parent / "weed"
    try:
        out = subprocess.run(
            [
                str(weed),
                "shell",
                f"-master=127.0.0.1:{ports['master']}",
                f"-filer=127.0.0.1:{ports['filer']}",
            ],
            input=commands,
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        )
    except subprocess.TimeoutExpired as exc:
        return (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    return out.stdout + out.stderr


def test_seaweedfs_grpc_refuses_a_client_without_the_platforms_certificate(
    quota_platform, tmp_path
):
    """gRPC answered any local process: ``weed shell`` listed every bucket and made and removed
    folders in bob's space (fs.mkdir/fs.rm through the filer). Without the platform's
    certificate (its security.toml is 0600 in the state folder) the shell gets nothing."""
    qp = quota_platform
    victim = f"/buckets/{WORK_BUCKET}/users/bob"
    # without TLS the shell answered within a second; with it, it retries until the timeout
    out = _weed_shell(qp, f"fs.ls /buckets\nfs.mkdir {victim}/planted\n", tmp_path, 8)
    assert WORK_BUCKET not in out, out[-2000:]
    # the platform's own shell (its security.toml) still works, and sees nothing planted
    listing = _weed_shell(qp, f"fs.ls /buckets\nfs.ls {victim}\n", qp.state / "seaweedfs", 60)
    assert WORK_BUCKET in listing, listing[-2000:]
    assert "planted" not in listing
