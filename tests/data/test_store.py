"""The data store: configuration from the environment, and clear errors a user can act on.

Runs against the real S3 server of the session (SeaweedFS, ``s3_store``) and a local folder.
"""

from __future__ import annotations

import pytest

from platform_lib.data.store import DataStoreError, get_store


def test_store_from_environment(s3_store, monkeypatch):
    for key, value in s3_store.client_env(prefix="env-test").items():
        monkeypatch.setenv(key, value)
    store = get_store()
    assert store.root_url == "s3://roman/env-test" and store.is_s3
    store.write_bytes("a/b.txt", b"roman")
    assert store.read_bytes("a/b.txt") == b"roman"
    assert list(store.walk_files()) == ["a/b.txt"]
    store.fs.rm(store.root, recursive=True)


def test_local_folder_store(tmp_path):
    store = get_store(tmp_path)
    store.write_bytes("x/y.bin", b"\x00\x01")
    assert (tmp_path / "x" / "y.bin").read_bytes() == b"\x00\x01"
    assert store.walk_files(suffixes=(".bin",)).keys() == {"x/y.bin"}
    with pytest.raises(DataStoreError, match="does not exist"):
        get_store(tmp_path / "missing", check=True)


def test_no_store_configured(monkeypatch):
    monkeypatch.delenv("ROMAN_DATA_URL", raising=False)
    with pytest.raises(DataStoreError, match="ROMAN_DATA_URL"):
        get_store()


def test_missing_credential_is_a_clear_error(s3_store, monkeypatch, tmp_path):
    # Nothing in botocore's default chain either (no profile; never ask a metadata server).
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in (
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(DataStoreError, match="no S3 credential.*AWS_ACCESS_KEY_ID"):
        get_store("s3://roman/x", endpoint=s3_store.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_store.access_key)
    with pytest.raises(DataStoreError, match="AWS_SECRET_ACCESS_KEY not set"):
        get_store("s3://roman/x", endpoint=s3_store.endpoint_url)


def test_default_credential_chain_without_static_keys(s3_store, monkeypatch, tmp_path):
    """Workload identity (issue 16 item 3): no AWS_* keys in the pod, yet botocore's default
    chain has credentials (here a shared credentials file; on EKS the web-identity token).
    Before, get_store refused every s3:// URL without static keys."""
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[default]\naws_access_key_id = {s3_store.access_key}\n"
        f"aws_secret_access_key = {s3_store.storage_options()['secret']}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    store = get_store("s3://roman/chain-test", endpoint=s3_store.endpoint_url)
    assert "key" not in store.storage_options  # no static keys: s3fs asks the chain itself
    store.write_bytes("hello.txt", b"hi")
    assert store.read_bytes("hello.txt") == b"hi"


def test_wrong_secret_and_anonymous_are_denied(s3_store):
    bad = get_store(
        "s3://roman/x",
        endpoint=s3_store.endpoint_url,
        key=s3_store.access_key,
        secret="not-the-secret",
    )
    with pytest.raises(DataStoreError, match="access to s3://roman/x denied"):
        bad.check()
    anon = get_store("s3://roman/x", endpoint=s3_store.endpoint_url, anon=True)
    with pytest.raises(DataStoreError, match="denied"):
        anon.write_bytes("y", b"1")


def test_missing_bucket_is_a_clear_error(s3_store):
    opts = s3_store.storage_options()
    store = get_store(
        "s3://no-such-bucket/data",
        endpoint=s3_store.endpoint_url,
        key=opts["key"],
        secret=opts["secret"],
    )
    with pytest.raises(DataStoreError, match="bucket 'no-such-bucket' does not exist"):
        store.check()
    from platform_lib.data import build_index

    with pytest.raises(DataStoreError, match="no-such-bucket"):
        build_index(store)
