"""What ``weed mini`` is started with: its ports, its S3 identity file and its ``security.toml``.

Kept apart from the process (:mod:`hub_config.local.seaweedfs`) because these are the store's
security and addressing, each with its own reason: every port is chosen by us on 127.0.0.1 and
kept with the data folder (weed records them and refuses a restart on others; its components
find a gRPC port as HTTP port + 10000 in places), S3 requests are signed with static keys from
an identity file as on a cloud store, and JWT keys close the filer's and the volume server's own
HTTP ports, which would otherwise serve every bucket to anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import socket
from pathlib import Path

__all__ = [
    "PORT_NAMES",
    "SeaweedFSError",
    "check_bucket_name",
    "choose_ports",
    "free_port",
    "saved_ports",
    "write_identities",
    "write_security",
]

#: the ports of ``weed mini`` besides S3's own, in the order :func:`choose_ports` keeps them
PORT_NAMES = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3_grpc",
    "admin",
    "admin_grpc",
    "metrics",
)


class SeaweedFSError(RuntimeError):
    """SeaweedFS could not be found, started or reached."""


def check_bucket_name(bucket: str) -> None:
    """Refuse a name S3 would refuse, before weed starts (it fails late and obscurely)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise SeaweedFSError(
            f"invalid bucket name {bucket!r}: S3 bucket names are 3-63 characters of "
            "lower-case letters, digits, '.' and '-'"
        )


# ---------------------------------------------------------------------------- ports
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port_pairs(n: int, tries: int = 500) -> list[int]:
    """n ports p with p and p + 10000 both free (p in 20000-45000)."""
    rng = random.Random()
    out: list[int] = []
    for _ in range(tries):
        p = rng.randrange(20000, 45000)
        if p in out or p + 10000 in out:
            continue
        if _port_free(p) and _port_free(p + 10000):
            out.append(p)
            if len(out) == n:
                return out
    raise SeaweedFSError(f"could not find {n} free port pairs (p, p+10000) on 127.0.0.1")


def saved_ports(folder: Path) -> dict[str, int]:
    """The ports a store folder was first started with (``ports.json``), or none."""
    try:
        return {k: int(v) for k, v in json.loads((folder / "ports.json").read_text()).items()}
    except (OSError, ValueError):
        return {}


def choose_ports(folder: Path, ports: dict[str, int], s3_port: int) -> dict[str, int]:
    """Every port weed will use: ``ports`` if complete, else new ones; saved with the folder."""
    if not all(n in ports for n in PORT_NAMES):
        # weed's components find each other's gRPC port as HTTP port + 10000 in places
        # (the admin plugin worker does, whatever -admin.port.grpc says): keep that rule.
        pairs = _free_port_pairs(4)
        ports = {
            "master": pairs[0],
            "master_grpc": pairs[0] + 10000,
            "volume": pairs[1],
            "volume_grpc": pairs[1] + 10000,
            "filer": pairs[2],
            "filer_grpc": pairs[2] + 10000,
            "admin": pairs[3],
            "admin_grpc": pairs[3] + 10000,
            "s3_grpc": free_port(),
            "metrics": free_port(),
        }
    ports["s3"] = s3_port
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ports.json").write_text(json.dumps(ports, indent=1))
    return ports


# ---------------------------------------------------------------------------- security
def write_identities(folder: Path, access_key: str, secret_key: str) -> Path:
    """The S3 identity file: one admin identity with the static keys."""
    config = {
        "identities": [
            {
                "name": "platform",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    path = folder / "s3-identities.json"
    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o600)
    return path


def write_security(folder: Path, secret_key: str) -> Path:
    """``security.toml`` (weed reads it from its working folder): JWT keys so the filer's and
    the volume server's HTTP ports refuse requests without a token signed by the platform
    (they answered list/read/write of every bucket to anyone, bypassing S3 auth). The S3
    gateway and ``weed shell`` read the same file and keep working."""

    def key(what: str) -> str:
        return hmac.new(secret_key.encode(), what.encode(), hashlib.sha256).hexdigest()

    path = folder / "security.toml"
    path.write_text(
        "".join(
            f'[{section}]\nkey = "{key(section)}"\n'
            for section in (
                "jwt.signing",
                "jwt.signing.read",
                "jwt.filer_signing",
                "jwt.filer_signing.read",
            )
        )
    )
    path.chmod(0o600)
    return path
