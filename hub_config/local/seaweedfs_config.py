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
import os
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


#: the components whose gRPC servers ``weed mini`` runs (and its shell's and gateway's client)
GRPC_SECTIONS = ("master", "volume", "filer", "s3", "admin", "worker", "mq")
TLS_NAME = "roman-platform-seaweedfs"


def write_tls(folder: Path) -> dict[str, Path]:
    """A private CA and one certificate for every weed component, made at each start (0600).

    gRPC answered every local process without credentials: as another OS account, ``weed
    shell`` listed every bucket and made and removed folders in another user's S3 space
    (``fs.mkdir``/``fs.rm`` through the filer's gRPC port). With mutual TLS on every gRPC
    server and the components' own HTTP ports, a client must present a certificate signed by
    this CA, whose files only the platform's account can read. The CA's key is not kept."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    tls = folder / "tls"
    tls.mkdir(mode=0o700, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{TLS_NAME} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_NAME)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = {
        "ca": (tls / "ca.crt", ca.public_bytes(serialization.Encoding.PEM)),
        "cert": (tls / "weed.crt", cert.public_bytes(serialization.Encoding.PEM)),
        "key": (
            tls / "weed.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
    }
    for path, data in files.values():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return {name: path for name, (path, _data) in files.items()}


def write_security(folder: Path, secret_key: str) -> Path:
    """``security.toml`` (weed reads it from its working folder), private to the platform:

    * JWT keys, so the filer's and the volume server's HTTP ports refuse requests without a
      token signed by the platform (they answered list/read/write of every bucket to anyone,
      bypassing S3 auth);
    * mutual TLS (:func:`write_tls`) on every gRPC server and client, and HTTPS with client
      certificates on the master's, volume server's and filer's HTTP ports, so that no local
      process without the platform's certificate reaches them. The S3 gateway (users' door,
      signed requests) stays plain HTTP on loopback. The gateway and ``weed shell`` run by the
      platform read the same file and keep working."""

    def key(what: str) -> str:
        return hmac.new(secret_key.encode(), what.encode(), hashlib.sha256).hexdigest()

    tls = write_tls(folder)
    ca, cert, tkey = (str(tls[n]) for n in ("ca", "cert", "key"))
    parts = [
        f'[{section}]\nkey = "{key(section)}"\n'
        for section in (
            "jwt.signing",
            "jwt.signing.read",
            "jwt.filer_signing",
            "jwt.filer_signing.read",
        )
    ]
    parts.append(f'[grpc]\nca = "{ca}"\n')
    parts += [
        f'[grpc.{c}]\ncert = "{cert}"\nkey = "{tkey}"\nclient_cert = "{cert}"\n'
        f'client_key = "{tkey}"\nallowed_commonNames = "{TLS_NAME}"\n'
        for c in GRPC_SECTIONS
    ]
    parts.append(f'[grpc.client]\ncert = "{cert}"\nkey = "{tkey}"\n')
    parts.append(f'[https.client]\nenabled = true\ncert = "{cert}"\nkey = "{tkey}"\nca = "{ca}"\n')
    parts += [
        f'[https.{c}]\ncert = "{cert}"\nkey = "{tkey}"\nca = "{ca}"\n'
        for c in ("master", "volume", "filer")
    ]
    path = folder / "security.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(parts))
    path.chmod(0o600)
    return path
