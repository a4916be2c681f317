"""The data store: one URL (``s3://bucket/prefix`` or a local folder) reached through fsspec.

A notebook on the platform needs no set-up: the spawner puts ``ROMAN_DATA_URL``,
``ROMAN_DATA_S3_ENDPOINT`` and the ``AWS_*`` keys in its environment, and :func:`get_store`
reads them. Everything is overridable in code (``get_store("s3://other/x", endpoint=...)``) so
the same functions work against any bucket or a folder on disk. Errors a user can fix (no
credential, no bucket, wrong key) are raised as :class:`DataStoreError` with the URL and what
to set, instead of botocore's stack.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

from ..env_contract import DATA_S3_ENDPOINT, DATA_URL

__all__ = ["DataStoreError", "Store", "get_store", "ENV_URL", "ENV_ENDPOINT"]

ENV_URL = DATA_URL
ENV_ENDPOINT = DATA_S3_ENDPOINT


class DataStoreError(RuntimeError):
    """The data store cannot be reached as configured (a message a user can act on)."""


@dataclass
class Store:
    """A data store root: an fsspec filesystem plus the root path inside it.

    Paths given to the methods are relative to the root (``"L2/r0001_WFI01_F158_cal.asdf"``);
    :meth:`url` turns one into a full URL that :func:`fsspec.open` understands with
    :attr:`storage_options`.
    """

    root_url: str
    fs: fsspec.AbstractFileSystem
    root: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        return "s3" if self.is_s3 else "file"

    @property
    def is_s3(self) -> bool:
        return self.root_url.startswith(("s3://", "s3a://"))

    def path(self, relative: str = "") -> str:
        """Filesystem path (as fsspec names it) of a path relative to the root."""
        relative = posixpath.normpath(relative.lstrip("/")) if relative.strip("/") else ""
        if relative in (".", ""):
            return self.root
        if relative == ".." or relative.startswith("../"):
            raise ValueError(f"{relative!r} leads outside the store {self.root_url}")
        full = posixpath.join(self.root, relative)
        if not self.is_s3:
            # a symlink inside a folder store must not lead out of it either
            real, root = os.path.realpath(full), os.path.realpath(self.root)
            if real != root and not real.startswith(root.rstrip("/") + "/"):
                raise ValueError(f"{relative!r} leads outside the store {self.root_url}")
        return full

    def url(self, relative: str = "") -> str:
        if self.is_s3:
            return "s3://" + self.path(relative)
        return self.path(relative)

    def relative(self, path: str) -> str:
        """Inverse of :meth:`path`: a filesystem path (with or without protocol) → relative."""
        path = posixpath.normpath(self.fs._strip_protocol(path))
        root = self.root.rstrip("/")
        if path == root:
            return ""
        if not path.startswith(root + "/"):
            raise ValueError(f"{path} is not inside the store {self.root_url}")
        return path[len(root) + 1 :]

    def open(self, relative: str, mode: str = "rb", **kwargs: Any):
        return _wrap_errors(self, lambda: self.fs.open(self.path(relative), mode, **kwargs))

    def info(self, relative: str) -> dict[str, Any]:
        """The object's metadata (size, ETag or mtime); FileNotFoundError if it is absent."""
        return _wrap_errors(self, lambda: self.fs.info(self.path(relative)))

    def exists(self, relative: str) -> bool:
        return _wrap_errors(self, lambda: self.fs.exists(self.path(relative)))

    def put_file(self, local: str | os.PathLike, relative: str) -> str:
        """Copy one local file into the store; returns its relative path."""
        target = self.path(relative)
        if not self.is_s3:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        _wrap_errors(self, lambda: self.fs.put_file(os.fspath(local), target))
        return relative

    def write_bytes(self, relative: str, data: bytes) -> None:
        target = self.path(relative)
        if not self.is_s3:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        _wrap_errors(self, lambda: self.fs.pipe_file(target, data))

    def replace_bytes(self, relative: str, data: bytes) -> None:
        """Write one small file so that a reader sees the old content or the new, never a part:
        on S3 one PUT (atomic per object), in a folder a sibling temporary then ``os.replace``
        (``write_bytes`` truncates in place there). The switch of a HATS collection's version."""
        target = self.path(relative)
        if self.is_s3:
            _wrap_errors(self, lambda: self.fs.pipe_file(target, data))
            return
        folder, name = os.path.split(target)
        Path(folder).mkdir(parents=True, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def read_bytes(self, relative: str) -> bytes:
        return _wrap_errors(self, lambda: self.fs.cat_file(self.path(relative)))

    def walk_files(self, relative: str = "", suffixes: tuple[str, ...] = ()) -> dict[str, dict]:
        """Every file under ``relative`` → its listing info (size, mtime/ETag), in one listing."""
        base = self.path(relative)

        def _find() -> dict[str, dict]:
            if self.is_s3:
                # No existence probe first: S3 answers a HEAD of the bare prefix ("teams/t") with
                # 403 to a key allowed only "teams/t/*" (every user and team space), so ask the
                # listing, which is what that key may do.
                try:
                    return self.fs.find(base, detail=True)
                except PermissionError:
                    if self._lists_empty(base):
                        return {}  # an empty prefix: s3fs's HEAD fallback was the refusal
                    raise
            if not self.fs.exists(base):
                return {}
            return self.fs.find(base, detail=True)

        found = _wrap_errors(self, _find)
        out = {}
        for path, info in found.items():
            if info.get("type") == "directory":
                continue
            rel = self.relative(path)
            if suffixes and not rel.endswith(suffixes):
                continue
            out[rel] = info
        return out

    def _lists_empty(self, path: str) -> bool:
        """Whether listing under ``path`` is allowed and finds nothing (PermissionError if the
        listing itself is refused)."""
        bucket, key, _ = self.fs.split_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        out = self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=prefix, MaxKeys=1)
        return not out.get("Contents")

    def check(self) -> None:
        """Fail now, with a clear message, if the store cannot be listed."""

        def _probe() -> None:
            if self.is_s3:
                # list under the store's own root, not the bucket: a user's or team's key may
                # list its prefix only (a missing bucket or endpoint still fails here)
                self._lists_empty(self.root)
            elif not Path(self.root).is_dir():
                raise DataStoreError(
                    f"data store folder {self.root} does not exist (from {self.root_url}); "
                    "create it or set ROMAN_DATA_URL to an existing folder or s3:// URL"
                )

        _wrap_errors(self, _probe)


def _wrap_errors(store: Store, call):
    """Run ``call`` and turn S3's access/bucket errors into one clear DataStoreError."""
    try:
        return call()
    except DataStoreError:
        raise
    except PermissionError as exc:
        raise DataStoreError(
            f"access to {store.root_url} denied ({exc}); check AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY (or pass key=/secret= to get_store)"
        ) from exc
    except FileNotFoundError as exc:
        if store.is_s3 and "bucket" in str(exc).lower():
            bucket = store.root.split("/", 1)[0]
            raise DataStoreError(
                f"bucket '{bucket}' does not exist on {store.storage_options.get('client_kwargs', {}).get('endpoint_url', 'S3')} "
                f"(data store {store.root_url})"
            ) from exc
        raise
    except Exception as exc:
        name = type(exc).__name__
        if name in {"NoCredentialsError", "PartialCredentialsError"}:
            raise DataStoreError(
                f"no S3 credential for {store.root_url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (the platform sets them in every notebook), or pass "
                "key=/secret= (or anon=True for a public bucket) to get_store"
            ) from exc
        if name in {"EndpointConnectionError", "ClientConnectorError"}:
            raise DataStoreError(
                f"cannot reach the S3 endpoint for {store.root_url}: {exc}"
            ) from exc
        raise


def get_store(
    url: str | os.PathLike | Store | None = None,
    *,
    endpoint: str | None = None,
    key: str | None = None,
    secret: str | None = None,
    anon: bool = False,
    check: bool = False,
    **storage_options: Any,
) -> Store:
    """The data store at ``url`` (default: ``$ROMAN_DATA_URL``).

    For ``s3://`` URLs the endpoint defaults to ``$ROMAN_DATA_S3_ENDPOINT`` (unset: AWS) and the
    credentials to ``$AWS_ACCESS_KEY_ID`` / ``$AWS_SECRET_ACCESS_KEY``. A missing credential is
    an error here, not a confusing anonymous 403 later, unless ``anon=True``.
    """
    if isinstance(url, Store):
        return url
    if url is not None and not (endpoint or key or secret or anon or storage_options):
        known = _KNOWN.get(_normalise(os.fspath(url)))
        if known is not None:
            # the store this session already reached at that URL (e.g. a search row's
            # meta['store']): same credentials and endpoint as then
            return known
    if url is None:
        url = os.environ.get(ENV_URL)
        if not url:
            raise DataStoreError(
                f"no data store configured: set {ENV_URL} (s3://bucket/prefix or a folder), "
                "or pass the URL to this function" + _on_worker_hint([ENV_URL])
            )
    url = os.fspath(url)
    if url.startswith(("s3://", "s3a://")):
        import s3fs

        root = url.split("://", 1)[1].strip("/")
        if not root:
            raise DataStoreError(f"S3 data store URL {url!r} names no bucket")
        key = key if key is not None else os.environ.get("AWS_ACCESS_KEY_ID")
        secret = secret if secret is not None else os.environ.get("AWS_SECRET_ACCESS_KEY")
        chain = not anon and not key and not secret and _default_chain_has_credentials()
        if not anon and not chain and (not key or not secret):
            missing = [
                n
                for n, v in (("AWS_ACCESS_KEY_ID", key), ("AWS_SECRET_ACCESS_KEY", secret))
                if not v
            ]
            raise DataStoreError(
                f"no S3 credential for {url}: {' and '.join(missing)} not set (the platform "
                "sets them in every notebook); pass key=/secret=, or anon=True for a public bucket"
                + _on_worker_hint(missing)
            )
        endpoint = endpoint or os.environ.get(ENV_ENDPOINT) or None
        options: dict[str, Any] = {"anon": anon, **storage_options}
        if not anon and not chain:
            options.update(key=key, secret=secret)
        client_kwargs = dict(options.pop("client_kwargs", {}) or {})
        if endpoint:
            client_kwargs.setdefault("endpoint_url", endpoint)
            client_kwargs.setdefault("region_name", "us-east-1")
        options["client_kwargs"] = client_kwargs
        options.setdefault("config_kwargs", {"s3": {"addressing_style": "path"}})
        fs = s3fs.S3FileSystem(**options)
        store = Store(root_url=f"s3://{root}", fs=fs, root=root, storage_options=options)
    else:
        if url.startswith("file://"):
            url = url[len("file://") :]
        root = str(Path(url).expanduser().resolve())
        fs = fsspec.filesystem("file")
        store = Store(root_url=root, fs=fs, root=root, storage_options={})
    if check:
        store.check()
    _KNOWN[store.root_url] = store
    return store


_KNOWN: dict[str, Store] = {}


def _on_worker_hint(missing: list[str]) -> str:
    """On a Dask worker, say where its environment comes from (issue 15: workers had none)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return ""
    return (
        f". This runs on Dask worker {worker.address}, whose environment lacks "
        f"{', '.join(missing)}: on the platform the Dask-Gateway gives workers your server's "
        "data settings (hub_config.gateway.data_environment); a LocalCluster or a "
        "self-made cluster needs them in its environment"
    )


def _default_chain_has_credentials() -> bool:
    """Does botocore's default credential chain find credentials without static keys?

    On Kubernetes with workload identity (EKS IRSA's web-identity token, EKS Pod Identity's
    container endpoint, GKE/Azure federation) or with a shared credentials file/profile, the pod
    has no AWS_* keys yet may read the bucket; s3fs then uses the same chain.
    """
    import botocore.session

    try:
        return botocore.session.get_session().get_credentials() is not None
    except Exception:
        return False


def _normalise(url: str) -> str:
    if url.startswith(("s3://", "s3a://")):
        return "s3://" + url.split("://", 1)[1].strip("/")
    if url.startswith("file://"):
        url = url[len("file://") :]
    return str(Path(url).expanduser().resolve())
