"""One S3 identity per hub user on the local platform's SeaweedFS, scoped to what they may touch.

Before this, every server got the platform's admin key, so Alice's kernel could delete Bob's
objects or rewrite the survey. Now each user gets a key of their own, made when their server
(or a Dask cluster of theirs) starts, allowed exactly:

* the survey bucket (``ROMAN_DATA_URL``): ``Read`` and ``List``, nothing else;
* ``<work bucket>/users/<name>/``: read, write, list (``ROMAN_USER_STORE_URL``);
* ``<work bucket>/teams/<team>/`` for each team they are a member of (hub groups ``team-<t>``,
  which the quota service keeps in step with accepted memberships): read, write, list
  (``ROMAN_TEAM_STORE_URL`` + ``<team>/``).

The identity is (re)written with ``weed shell s3.configure -apply`` (SeaweedFS keeps it in the
filer and the S3 gateway picks it up at once), so membership changes apply at the next server or
cluster start. The key pair is derived from a platform secret (HMAC of the user name), so the
hub and the gateway compute the same key without sharing a table, and nothing new is stored.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hub_config.naming import user_folder_name
from hub_config.policy import TEAM_ADMIN_SUFFIX, TEAM_GROUP_PREFIX
from platform_lib import env_contract


@dataclass(frozen=True)
class S3Settings:
    """The ``s3`` section the SeaweedFS component adds to the platform settings."""

    weed: str
    master: str
    folder: str
    survey_bucket: str
    work_bucket: str
    key_seed: str

    @classmethod
    def from_settings(cls, settings: object) -> S3Settings | None:
        raw = getattr(settings, "s3", None)
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__}) if raw else None


def user_keys(s3: S3Settings, username: str) -> tuple[str, str]:
    """(access key, secret key) of ``username``: stable, unguessable without the seed."""
    mac = hmac.new(s3.key_seed.encode(), f"user:{username}".encode(), hashlib.sha256).hexdigest()
    secret = hmac.new(
        s3.key_seed.encode(), f"secret:{username}".encode(), hashlib.sha256
    ).hexdigest()
    return "RU" + mac[:18].upper(), secret


def teams_of(groups: list[str]) -> list[str]:
    return sorted(
        {
            g[len(TEAM_GROUP_PREFIX) :]
            for g in groups
            if g.startswith(TEAM_GROUP_PREFIX) and not g.endswith(TEAM_ADMIN_SUFFIX)
        }
    )


def actions(s3: S3Settings, username: str, teams: list[str]) -> list[str]:
    """The SeaweedFS actions of a user: survey read-only, own prefix and team prefixes."""
    out = [f"Read:{s3.survey_bucket}", f"List:{s3.survey_bucket}"]
    spaces = [f"users/{user_folder_name(username)}"] + [f"teams/{t}" for t in teams]
    for space in spaces:
        out += [f"{verb}:{s3.work_bucket}/{space}/*" for verb in ("Read", "Write", "List")]
    return out


def identity_name(username: str) -> str:
    return "user-" + user_folder_name(username).replace("%", "_")


def ensure_identity(s3: S3Settings, username: str, groups: list[str], timeout: float = 60) -> dict:
    """Create or update the user's identity in SeaweedFS; the environment their processes get."""
    key, secret = user_keys(s3, username)
    teams = teams_of(list(groups))
    acts = actions(s3, username, teams)
    name = identity_name(username)
    remove = f"s3.configure -user {name} -delete -apply\n"  # drops teams left since last time
    create = (
        f"s3.configure -user {name} -access_key {key} -secret_key {secret} "
        f"-actions {','.join(acts)} -apply\n"
    )
    lock = Path(s3.folder) / "run" / "identities.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:  # one writer at a time (hub and gateway are two processes)
        fcntl.flock(fh, fcntl.LOCK_EX)
        for script, must_work in ((remove, False), (create, True)):
            r = subprocess.run(
                [s3.weed, "shell", f"-master={s3.master}"],
                input=script,
                text=True,
                capture_output=True,
                timeout=timeout,
                cwd=s3.folder,
            )
            failed = r.returncode != 0 or "error" in (r.stderr + r.stdout).lower()
            if must_work and failed:
                raise RuntimeError(
                    f"could not set the S3 identity of {username}: {(r.stderr or r.stdout)[-300:]}"
                )
    return user_store_env(s3, username)


def user_store_env(s3: S3Settings, username: str) -> dict[str, str]:
    """The S3 part of a user's environment: their keys and their writable spaces."""
    key, secret = user_keys(s3, username)
    return {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        env_contract.USER_STORE_URL: f"s3://{s3.work_bucket}/users/{user_folder_name(username)}/",
        env_contract.TEAM_STORE_URL: f"s3://{s3.work_bucket}/teams/",
    }
