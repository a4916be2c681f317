"""The local platform's spawner: one real JupyterLab server per user, as local processes.

Based on JupyterHub's SimpleLocalProcessSpawner (every server runs as the platform's own OS
user), with the per-user working folder inside the state folder (so a user's files survive a
restart and a reset is one ``rm -rf``), created private, and ``--allow-root`` added only when the
platform itself runs as root (the single-user server refuses root otherwise). The environment
contract (DASK_GATEWAY__*, ROMAN_DATA_URL, ...) comes from ``Spawner.environment``, set by
hub_config/jupyterhub_config.py from the platform settings.

The tier mixin (hub_config/spawner.py, TierSpawnerMixin) is combined with this class there, so
the class stays a plain local-process spawner here.
"""

from __future__ import annotations

import asyncio
import os

from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Bool, Dict, Unicode, default

from hub_config.naming import user_folder_name
from platform_lib import env_contract


def store_urls(data_url: str, username: str, home: str) -> dict[str, str]:
    """The writable-store contract: ``ROMAN_USER_STORE_URL`` (the user's own prefix) and
    ``ROMAN_TEAM_STORE_URL`` (base of team spaces, ``<base><team>/``), next to the survey in the
    same bucket (``s3://<bucket>/users/<name>/``, ``s3://<bucket>/teams/``); with a folder
    survey, folders in the user's home. Results are written there, never into the survey."""
    if data_url.startswith(("s3://", "s3a://")):
        bucket = data_url.split("://", 1)[1].split("/", 1)[0]
        return {
            env_contract.USER_STORE_URL: f"s3://{bucket}/users/{user_folder_name(username)}/",
            env_contract.TEAM_STORE_URL: f"s3://{bucket}/teams/",
        }
    return {
        env_contract.USER_STORE_URL: os.path.join(home, "store") + "/",
        env_contract.TEAM_STORE_URL: os.path.join(home, "teams") + "/",
    }


class LocalPlatformSpawner(SimpleLocalProcessSpawner):
    """JupyterLab as a local process in ``<state>/users/<name>``; for the local platform only."""

    users_dir = Unicode(
        config=True, help="Folder holding one working folder per user (inside the state folder)."
    )
    allow_root = Bool(
        False, config=True, help="Pass --allow-root to the server (only honoured when uid is 0)."
    )

    s3 = Dict(
        config=True,
        help="The platform settings' s3 section (per-user S3 identities); "
        "empty: every server gets the shared environment's key.",
    )

    @default("s3")
    def _default_s3(self) -> dict:
        if not os.environ.get(env_contract.PLATFORM_SETTINGS):
            return {}
        from hub_config.settings import load_settings

        return dict(getattr(load_settings(), "s3", None) or {})

    async def start(self):
        # The user's own S3 identity (hub_config/local/s3_identities.py), made or refreshed for
        # their current teams before the server exists; its keys replace the platform's.
        self._s3_env: dict[str, str] = {}
        if self.s3:
            from hub_config.local.s3_identities import S3Settings, ensure_identity

            s3 = S3Settings(**{k: self.s3[k] for k in S3Settings.__dataclass_fields__})
            groups = [g.name for g in self.user.groups]
            self._s3_env = await asyncio.to_thread(ensure_identity, s3, self.user.name, groups)
        return await super().start()

    @default("home_dir")
    def _default_home_dir(self) -> str:
        if not self.users_dir:
            raise ValueError("LocalPlatformSpawner.users_dir is not configured")
        return os.path.join(self.users_dir, user_folder_name(self.user.name))

    def make_preexec_fn(self, name: str):
        home = self.home_dir

        def preexec() -> None:
            # Runs in the child before exec: a failure here must not kill the hub, so it is
            # reported by the server failing to start in the right folder instead.
            os.makedirs(home, 0o700, exist_ok=True)
            os.chdir(home)

        return preexec

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(store_urls(env.get(env_contract.DATA_URL, ""), self.user.name, self.home_dir))
        env.update(getattr(self, "_s3_env", None) or {})
        return env

    def get_args(self) -> list[str]:
        args = super().get_args()
        if self.allow_root and os.geteuid() == 0 and "--allow-root" not in args:
            args.append("--allow-root")
        return args
