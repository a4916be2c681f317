"""The local platform's spawner: one real JupyterLab server per user, as local processes.

Based on JupyterHub's SimpleLocalProcessSpawner, with the per-user working folder inside the
state folder (so a user's files survive a restart and a reset is one ``rm -rf``), created
private. Two modes (hub_config/local/accounts.py):

* **system accounts** (the platform runs as root): the user's account is made or checked and
  their home handed to it before the server starts; the server process becomes that account in
  the child (groups, gid, uid, umask 077) before it executes the *user runtime*'s
  ``jupyterhub-singleuser`` (hub_config/local/user_runtime.py), with HOME, PATH, VIRTUAL_ENV and
  PYTHONPATH of that runtime, never the platform's. This is LocalProcessSpawner's model with the
  hub user mapped to ``<prefix><name>``.
* **single-account mode**: every server runs as the platform's own OS user, ``--allow-root``
  added only when that is root (the single-user server refuses root otherwise).

The environment contract (DASK_GATEWAY__*, ROMAN_DATA_URL, ...) comes from
``Spawner.environment``, set by hub_config/jupyterhub_config.py from the platform settings.

The tier mixin (hub_config/spawner.py, TierSpawnerMixin) is combined with this class there, so
the class stays a plain local-process spawner here.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

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


def _settings_section(name: str) -> dict:
    """One section of the settings file the supervisor wrote, as a dict (empty without one):
    the defaults of the spawner's ``accounts`` and ``s3`` when the config set neither."""
    if not os.environ.get(env_contract.PLATFORM_SETTINGS):
        return {}
    from hub_config.settings import load_settings

    section = getattr(load_settings(), name, None)
    if section is None:
        return {}
    return section.model_dump() if hasattr(section, "model_dump") else dict(section)


class LocalPlatformSpawner(SimpleLocalProcessSpawner):
    """JupyterLab as a local process in ``<state>/users/<name>``; for the local platform only."""

    users_dir = Unicode(
        config=True, help="Folder holding one working folder per user (inside the state folder)."
    )
    allow_root = Bool(
        False, config=True, help="Pass --allow-root to the server (only honoured when uid is 0)."
    )

    accounts = Dict(
        config=True,
        help="The platform settings' accounts section (hub_config/settings.py AccountsSettings); "
        "mode 'system': every server runs as its user's own system account.",
    )

    @default("accounts")
    def _default_accounts(self) -> dict:
        return _settings_section("accounts")

    def system_accounts(self):
        """(SystemAccounts, UserRuntime) in system-account mode, else None."""
        if self.accounts.get("mode") != "system":
            return None
        from hub_config.local.accounts import from_settings
        from hub_config.settings import AccountsSettings

        return from_settings(AccountsSettings(**self.accounts))

    s3 = Dict(
        config=True,
        help="The platform settings' s3 section (per-user S3 identities); "
        "empty: every server gets the shared environment's key.",
    )

    @default("s3")
    def _default_s3(self) -> dict:
        return _settings_section("s3")

    async def start(self):
        self._account = None
        system = self.system_accounts()
        if system is not None:
            # Before anything of the user's exists: the account, and the home handed to it.
            accounts, runtime = system
            if Path(self.home_dir) != accounts.home(self.user.name):
                raise ValueError(f"home {self.home_dir} is not the account's home")
            # the program of the chosen environment, as the account can run it (its copy)
            cmd: list[str] = list(self.cmd)  # type: ignore[has-type]
            self.cmd = [runtime.program(cmd[0]), *cmd[1:]]
            self._account = await asyncio.to_thread(accounts.ensure, self.user.name)
            self._account_groups = accounts.groups(self._account)
            self.log.info("%s runs as system account %s", self._log_name, self._account.pw_name)
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
        account = getattr(self, "_account", None)
        if account is not None:
            from hub_config.local.accounts import drop_privileges

            groups = list(self._account_groups)

            def become_user() -> None:
                drop_privileges(account, groups, home)

            return become_user

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
        system = self.system_accounts()
        account = getattr(self, "_account", None)
        if system is not None and account is not None:
            runtime = system[1]
            overlay_path = self.environment.get("PATH")  # an overlay's programs first
            env.update(runtime.environment(self.home_dir, account.pw_name))
            if overlay_path:
                first = runtime.relocate(overlay_path.split(os.pathsep)[0])
                env["PATH"] = os.pathsep.join([first, env["PATH"]])
        return env

    def get_args(self) -> list[str]:
        args = super().get_args()
        if (
            self.allow_root
            and os.geteuid() == 0
            and getattr(self, "_account", None) is None
            and "--allow-root" not in args
        ):
            args.append("--allow-root")
        return args
