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


def test_missing_credential_is_a_clear_error(s3_store, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(DataStoreError, match="no S3 credential.*AWS_ACCESS_KEY_ID"):
        get_store("s3://roman/x", endpoint=s3_store.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_store.access_key)
    with pytest.raises(DataStoreError, match="AWS_SECRET_ACCESS_KEY not set"):
        get_store("s3://roman/x", endpoint=s3_store.endpoint_url)


def test_wrong_secret_and_anonymous_are_denied(s3_store):
    bad = get_store("s3://roman/x", endpoint=s3_store.endpoint_url, key=s3_store.access_key,
                    secret="not-the-secret")
    with pytest.raises(DataStoreError, match="access to s3://roman/x denied"):
        bad.check()
    anon = get_store("s3://roman/x", endpoint=s3_store.endpoint_url, anon=True)
    with pytest.raises(DataStoreError, match="denied"):
        anon.write_bytes("y", b"1")


def test_missing_bucket_is_a_clear_error(s3_store):
    opts = s3_store.storage_options()
    store = get_store("s3://no-such-bucket/data", endpoint=s3_store.endpoint_url,
                      key=opts["key"], secret=opts["secret"])
    with pytest.raises(DataStoreError, match="bucket 'no-such-bucket' does not exist"):
        store.check()
    from platform_lib.data import build_index

    with pytest.raises(DataStoreError, match="no-such-bucket"):
        build_index(store)
