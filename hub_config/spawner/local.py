"""Local processes: enforce what one machine can (cgroup v1 or rlimits), state what it cannot."""

from __future__ import annotations

import math
import os
import resource
from pathlib import Path

from traitlets import Bool, Unicode

from hub_config.policy import ServerProfile, SoftwareEnvironment
from platform_lib import env_contract

from .tier import SpawnRefused, TierSpawnerMixin

CGROUP_ROOT = Path("/sys/fs/cgroup")


class TierLocalSpawnerMixin(TierSpawnerMixin):
    """For local-process spawners: enforce what one machine can, state what it cannot."""

    use_cgroups = Bool(True, config=True, help="Use cgroup v1 cpu/memory controllers if writable")
    cgroup_parent = Unicode("roman-platform", config=True)

    def local_enforcement(self) -> dict[str, str]:
        """How each profile limit is (or is not) enforced for local processes."""
        cg = self._cgroup_dirs() is not None
        return {
            "memory": "cgroup memory.limit_in_bytes" if cg else "RLIMIT_AS (address space)",
            "cpu": "cgroup cpu.cfs_quota_us" if cg else "CPU affinity (whole cores)",
            "gpu": "not enforced: local processes see every device",
            "image": "not used: local servers run the chosen environment's local Python "
            "environment (the platform's own, or its overlay)",
            "storage": "not enforced: home and scratch are plain folders",
        }

    def environment_unavailable(self, env: SoftwareEnvironment) -> str | None:
        from hub_config.environments import local_mismatch

        return local_mismatch(env)

    def apply_environment(self, env: SoftwareEnvironment | None) -> None:
        """The server's program from the environment's local Python environment: the configured
        command as is for the platform's own, else the same program of its overlay, first on
        PATH (hub_config.environments.local_runtime)."""
        from hub_config.environments import EnvironmentUnavailable, LocalRuntime, local_runtime

        if not hasattr(self, "_platform_cmd"):
            self._platform_cmd = list(self.cmd)
        try:
            runtime = local_runtime(env) if env is not None else LocalRuntime("")
            self.cmd = runtime.command(self._platform_cmd)
        except (EnvironmentUnavailable, FileNotFoundError) as exc:  # e.g. an overlay half made
            label = env.name if env is not None else "(the platform's own)"
            raise SpawnRefused(f"Environment {label} cannot start here: {exc}") from None
        extra = dict(self.environment)
        if runtime.prefix is not None:
            extra["PATH"] = runtime.path()
        elif getattr(self, "_overlay_path", None) == extra.get("PATH"):
            extra.pop("PATH", None)  # a previous start's overlay, not this one's
        self._overlay_path = extra.get("PATH") if runtime.prefix is not None else None
        self.environment = extra
        if env is not None and runtime.prefix is not None:
            self.log.info(
                "%s runs environment %s from %s", self._log_name, env.name, runtime.prefix
            )

    def _cgroup_dirs(self) -> tuple[Path, Path] | None:
        if not self.use_cgroups:
            return None
        cpu, mem = CGROUP_ROOT / "cpu", CGROUP_ROOT / "memory"
        if not ((cpu / "cpu.cfs_quota_us").exists() and (mem / "memory.limit_in_bytes").exists()):
            return None
        if not (os.access(cpu, os.W_OK) and os.access(mem, os.W_OK)):
            return None
        leaf = f"{self.user.name}-{self.name or 'default'}".replace("/", "_")
        return cpu / self.cgroup_parent / leaf, mem / self.cgroup_parent / leaf

    def apply_profile(self, profile: ServerProfile) -> None:
        super().apply_profile(profile)
        self._local_limits = profile
        notes = self.local_enforcement()
        self.environment = {
            **self.environment,
            env_contract.LIMITS_ENFORCED: "; ".join(f"{k}: {v}" for k, v in notes.items()),
        }
        self.log.info("local limits for %s: %s", self._log_name, notes)

    def _prepare_cgroups(self, profile: ServerProfile) -> tuple[Path, Path] | None:
        dirs = self._cgroup_dirs()
        if dirs is None:
            return None
        cpu_dir, mem_dir = dirs
        try:
            cpu_dir.mkdir(parents=True, exist_ok=True)
            mem_dir.mkdir(parents=True, exist_ok=True)
            period = int((cpu_dir / "cpu.cfs_period_us").read_text())
            (cpu_dir / "cpu.cfs_quota_us").write_text(str(int(profile.cpu_limit * period)))
            (cpu_dir / "cpu.shares").write_text(str(max(2, int(profile.cpu_guarantee * 1024))))
            (mem_dir / "memory.limit_in_bytes").write_text(str(profile.mem_limit_bytes))
        except OSError as exc:
            self.log.warning("cgroups unavailable (%s); falling back to rlimits", exc)
            return None
        return dirs

    def make_preexec_fn(self, name: str):
        base = super().make_preexec_fn(name)
        profile: ServerProfile | None = getattr(self, "_local_limits", None)
        if profile is None:
            return base
        dirs = self._prepare_cgroups(profile)
        self._cgroups_in_use = dirs
        cores = max(1, math.ceil(profile.cpu_limit))
        mem = profile.mem_limit_bytes

        def preexec() -> None:
            # Limits first, while the child may still write cgroup files; the base part last,
            # since it may drop root for the user's own account (hub_config/local/spawner.py).
            if dirs is not None:
                pid = str(os.getpid())
                for d in dirs:
                    (d / "cgroup.procs").write_text(pid)
            else:
                resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
                avail = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(0, avail[:cores])
            if base is not None:
                base()

        return preexec

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        for d in getattr(self, "_cgroups_in_use", None) or ():
            try:
                d.rmdir()
            except OSError:
                pass  # still has processes (kernels exiting); the next start reuses it
