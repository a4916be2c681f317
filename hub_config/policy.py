"""The tier policy: the one definition of what each tier may run.

Everything that enforces or displays a limit (spawner form and server-side checks, KubeSpawner
overrides, Dask-Gateway options and per-user totals, quota costs, the Helm values schema) asks the
:class:`Policy` loaded here, so a limit can never disagree between two places. The YAML is
validated at load; a bad file fails with one message naming the offending field path.

Size: about 480 lines on purpose: these models *are* the policy's schema (the chart's values
schema is generated from them), so one file is the one place a reader checks a field; and the
module may import nothing of ``hub_config`` (tests/test_layers.py), so its parts cannot move
into sibling modules of the package without that rule loosening.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from platform_lib import env_contract

DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")
#: Environment variable naming an alternative policy file: the one road to the policy for every
#: hub process (hub, quota service, gateway server). The chart sets it in each Deployment; the
#: hub passes it on to the quota service it starts; tests point it at their own policy.
POLICY_ENV = env_contract.POLICY_FILE

GIB = 1024**3

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$", description="lower-case name")]


class PolicyError(ValueError):
    """The policy file is missing or invalid; the message names the file and the field path."""


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a limit must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Toleration(_Strict):
    """A Kubernetes toleration, so a profile can land on tainted (GPU, high-memory) nodes."""

    key: str = Field(min_length=1)
    operator: Literal["Exists", "Equal"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    def as_k8s(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class ServerProfile(_Strict):
    """One size of JupyterLab server. Costs (cores, GPUs) are read by the quota service."""

    display_name: str = Field(min_length=1, description="Shown in the server options form")
    description: str = ""
    cpu_guarantee: float = Field(gt=0, le=256, description="CPU cores reserved (request)")
    cpu_limit: float = Field(gt=0, le=256, description="CPU cores the server may use at most")
    mem_guarantee_gib: float = Field(gt=0, le=4096, description="Memory reserved, GiB")
    mem_limit_gib: float = Field(gt=0, le=4096, description="Memory the server may use, GiB")
    gpus: int = Field(default=0, ge=0, le=16, description="nvidia.com/gpu count")
    image: str | None = Field(
        default=None, description="Notebook image; unset means the policy's default image"
    )
    home_gib: float = Field(gt=0, le=10000, description="Home volume size, GiB")
    scratch_gib: float = Field(ge=0, le=100000, description="Scratch volume size, GiB")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)

    @model_validator(mode="after")
    def _guarantee_within_limit(self) -> ServerProfile:
        if self.cpu_guarantee > self.cpu_limit:
            raise ValueError("cpu_guarantee must not exceed cpu_limit")
        if self.mem_guarantee_gib > self.mem_limit_gib:
            raise ValueError("mem_guarantee_gib must not exceed mem_limit_gib")
        return self

    @property
    def mem_limit_bytes(self) -> int:
        return int(self.mem_limit_gib * GIB)

    @property
    def mem_guarantee_bytes(self) -> int:
        return int(self.mem_guarantee_gib * GIB)


class Range(_Strict):
    """An inclusive numeric range for a user-chosen option."""

    min: float = Field(gt=0)
    max: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class GatewayLimits(_Strict):
    """What a tier may ask of Dask-Gateway: per cluster, and in total across a user's clusters."""

    max_clusters: int = Field(ge=0, le=1000, description="Clusters a user may run at once")
    max_workers: int = Field(ge=0, le=100000, description="Workers per cluster")
    worker_cores: Range = Field(description="Cores per worker a user may choose")
    worker_memory_gib: Range = Field(description="Memory per worker a user may choose, GiB")
    max_cores_per_cluster: float = Field(gt=0)
    max_memory_gib_per_cluster: float = Field(gt=0)
    max_total_workers: int = Field(ge=0, description="Workers across all of a user's clusters")
    max_total_cores: float = Field(ge=0, description="Worker cores across all clusters")
    max_total_memory_gib: float = Field(ge=0, description="Worker memory across all clusters")
    idle_timeout_s: float = Field(gt=0, le=7 * 86400, description="Idle clusters are stopped")

    @model_validator(mode="after")
    def _totals_hold_one_cluster(self) -> GatewayLimits:
        # A total below its per-cluster limit makes the per-cluster limit a lie: the gateway
        # would cut every scale request to the total without saying which setting is wrong.
        for total, per_cluster in (
            ("max_total_workers", "max_workers"),
            ("max_total_cores", "max_cores_per_cluster"),
            ("max_total_memory_gib", "max_memory_gib_per_cluster"),
        ):
            if self.max_clusters and getattr(self, total) < getattr(self, per_cluster):
                raise ValueError(
                    f"{total} ({getattr(self, total)}) is below {per_cluster} "
                    f"({getattr(self, per_cluster)}); a total must hold one cluster"
                )
        if self.max_workers and self.worker_cores.min > self.max_cores_per_cluster:
            raise ValueError(
                f"worker_cores.min ({self.worker_cores.min}) is above "
                f"max_cores_per_cluster ({self.max_cores_per_cluster}): no worker fits"
            )
        return self


class BaseAllocation(_Strict):
    """What a tier gets each period without asking; the quota service creates it on first use.

    Teams and consortia share larger allocations made by platform admins on top of this."""

    core_hours: float = Field(ge=0, description="Core-hours (cores x wall hours) per period")
    gpu_hours: float = Field(default=0, ge=0, description="GPU-hours per period")
    home_gb: float = Field(default=5, ge=0, description="Home storage quota, GB")
    scratch_gb: float = Field(default=10, ge=0, description="Scratch storage quota, GB")
    period_days: int = Field(
        default=30, ge=1, le=3660, description="Length of one allocation period"
    )

    def period_from(self, start: dt.datetime) -> dict[str, Any]:
        """The allocation's fields for one period starting at ``start`` (the quota service's
        allocation columns), for the user's base and for a demo team alike."""
        return {
            "core_hours": self.core_hours,
            "gpu_hours": self.gpu_hours,
            "home_gb": self.home_gb,
            "scratch_gb": self.scratch_gb,
            "period_start": start,
            "period_end": start + dt.timedelta(days=self.period_days),
        }


class Tier(_Strict):
    """A service tier. Order in the file is rank order: later tiers are larger."""

    display_name: str = Field(min_length=1)
    description: str = ""
    expected_users: int = Field(default=0, ge=0, description="Planning figure from the SOC table")
    typical_fields: str = Field(default="", description="Sky area per user, from the SOC table")
    shared: bool = Field(default=False, description="Members of one team share its allocation")
    profiles: list[Slug] = Field(min_length=1, description="Server profiles this tier may start")
    max_named_servers: int = Field(
        ge=1, le=100, description="Servers running at once, default incl."
    )
    idp_groups: list[str] = Field(
        default_factory=list, description="IdP groups whose members get (at least) this tier"
    )
    gateway: GatewayLimits
    base_allocation: BaseAllocation


class IdentityMapping(_Strict):
    """How identity-provider claims map onto hub groups and roles."""

    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    tier_claim: str | None = Field(
        default=None, description="Claim naming a tier directly (e.g. set by the broker)"
    )
    team_group_prefix: str = Field(default="team:", min_length=1)
    team_admin_suffix: str = Field(default=":admin", min_length=1)
    platform_admin_groups: list[str] = Field(default_factory=list)


class Images(_Strict):
    default: str = Field(min_length=1, description="Notebook image used when a profile names none")


#: A release name: the year and the release of that year ("2026.3"), RRN's convention, or any
#: short name of letters, digits, dots, dashes and underscores.
EnvironmentName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
        description='Release name, e.g. "2026.3" (shown in the form, set as ROMAN_ENVIRONMENT)',
    ),
]
_VERSION = r"^[0-9][0-9A-Za-z.+-]{0,39}$"


class PipelineVersions(_Strict):
    """The mission pipeline an environment carries: what its image's lock pins."""

    romancal: str = Field(pattern=_VERSION, description="romancal version in the image")
    romanisim: str = Field(pattern=_VERSION, description="romanisim version in the image")
    roman_datamodels: str = Field(pattern=_VERSION, description="roman_datamodels version")
    crds_context: str = Field(
        pattern=r"^roman_[0-9]{4}\.pmap$",
        description="CRDS context the environment calibrates with (roman_NNNN.pmap)",
    )

    def packages(self) -> dict[str, str]:
        """The pinned package versions (distribution name -> version), without the context."""
        return {
            "romancal": self.romancal,
            "romanisim": self.romanisim,
            "roman_datamodels": self.roman_datamodels,
        }


class SoftwareEnvironment(_Strict):
    """A versioned software environment: one notebook image, in step with a pipeline release.

    The user's server and its Dask scheduler and workers run the same one (its image on
    Kubernetes); ``platform_lib.environment`` reports it inside them."""

    name: EnvironmentName
    image: str = Field(
        pattern=r"^[^\s:/][^\s]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|@sha256:[0-9a-f]{64})$",
        description="Notebook image (repository:tag or @sha256 digest) of this environment",
    )
    description: str = ""
    default: bool = Field(default=False, description="The environment offered first")
    versions: PipelineVersions

    @model_validator(mode="after")
    def _pinned(self) -> SoftwareEnvironment:
        if self.image.endswith(":latest"):
            raise ValueError(
                f"image {self.image!r}: an environment's image must be pinned "
                "(a release tag or a digest, not latest)"
            )
        return self


class Policy(_Strict):
    """The whole tier policy (also the source of the Helm chart's ``policy`` values schema)."""

    default_tier: Slug = "entry"
    identity: IdentityMapping = Field(default_factory=IdentityMapping)
    images: Images
    profiles: dict[Slug, ServerProfile] = Field(min_length=1)
    tiers: dict[Slug, Tier] = Field(min_length=1)
    environments: list[SoftwareEnvironment] = Field(
        default_factory=list,
        description="Versioned software environments users choose from (newest first); "
        "empty: one unnamed environment, images.default",
    )

    @model_validator(mode="after")
    def _references_resolve(self) -> Policy:
        if self.default_tier not in self.tiers:
            raise ValueError(f"default_tier {self.default_tier!r} is not one of the tiers")
        for name, tier in self.tiers.items():
            missing = [p for p in tier.profiles if p not in self.profiles]
            if missing:
                raise ValueError(f"tiers.{name}.profiles names unknown profile(s) {missing}")
        self._check_environments()
        return self

    def _check_environments(self) -> None:
        envs = self.environments
        if not envs:
            return
        names = [e.name for e in envs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"environments: name(s) {twice} listed more than once")
        defaults = [e.name for e in envs if e.default]
        if len(defaults) != 1:
            raise ValueError(
                "environments: exactly one must be the default (default: true); "
                f"found {len(defaults)}{' (' + ', '.join(defaults) + ')' if defaults else ''}"
            )
        default = self.environment(defaults[0])
        if self.images.default != default.image:
            raise ValueError(
                f"images.default ({self.images.default!r}) must be the default environment's "
                f"image ({default.name}: {default.image!r})"
            )
        own = sorted(n for n, p in self.profiles.items() if p.image)
        if own:
            raise ValueError(
                f"profiles {own} name their own image, but with environments the image comes "
                "from the environment the user chooses: remove profiles.<name>.image"
            )

    # ------------------------------------------------------------------ readers' helpers
    @property
    def tier_names(self) -> list[str]:
        """Tiers in rank order (smallest first)."""
        return list(self.tiers)

    def tier(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            raise KeyError(f"unknown tier {name!r}; the policy defines {self.tier_names}") from None

    def rank(self, name: str) -> int:
        return self.tier_names.index(name)

    def profiles_for(self, tier: str) -> dict[str, ServerProfile]:
        """The profiles a tier may start, in the order the tier lists them."""
        return {p: self.profiles[p] for p in self.tier(tier).profiles}

    def image_for(self, profile: ServerProfile, environment: str | None = None) -> str:
        """The image a server of ``profile`` in ``environment`` runs (None: the default one)."""
        if self.environments:
            return self.environment(environment).image
        return profile.image or self.images.default

    @property
    def environment_names(self) -> list[str]:
        return [e.name for e in self.environments]

    @property
    def default_environment(self) -> SoftwareEnvironment | None:
        return next((e for e in self.environments if e.default), None)

    def environment(self, name: str | None = None) -> SoftwareEnvironment:
        """The environment called ``name`` (None: the default); KeyError names the known ones."""
        if name is None:
            found = self.default_environment
        else:
            found = next((e for e in self.environments if e.name == name), None)
        if found is None:
            raise KeyError(
                f"unknown environment {name!r}; the policy offers "
                f"{', '.join(self.environment_names) or 'none'}"
            )
        return found

    def gateway_limits(self, tier: str) -> GatewayLimits:
        return self.tier(tier).gateway

    def highest(self, names: list[str] | set[str]) -> str | None:
        """The highest-ranked known tier among ``names`` (unknown names are ignored)."""
        known = [n for n in names if n in self.tiers]
        return max(known, key=self.rank) if known else None

    def tier_from_idp(self, groups: list[str], tier_claim: str | None = None) -> str | None:
        """The tier the IdP's groups/claim imply, or None when they imply nothing."""
        found = [name for name, t in self.tiers.items() if set(t.idp_groups) & set(groups)]
        if tier_claim:
            found.append(tier_claim)
        return self.highest(found)

    def tier_of_groups(self, hub_groups: list[str] | set[str]) -> str:
        """A hub user's tier from their ``tier-<name>`` group; the default tier if none.

        More than one tier group should never happen (the authenticator keeps exactly one); if it
        does, the *lowest* wins so a stale grant cannot widen access.
        """
        tiers = [g[len(TIER_GROUP_PREFIX) :] for g in hub_groups if g.startswith(TIER_GROUP_PREFIX)]
        tiers = [t for t in tiers if t in self.tiers]
        if not tiers:
            return self.default_tier
        return min(tiers, key=self.rank)


TIER_GROUP_PREFIX = "tier-"
TEAM_GROUP_PREFIX = "team-"
TEAM_ADMIN_SUFFIX = "-admins"


def tier_group(tier: str) -> str:
    return f"{TIER_GROUP_PREFIX}{tier}"


def teams_of_groups(hub_groups: list[str] | set[str]) -> tuple[set[str], set[str]]:
    """(teams the user is in, teams the user administers) from hub group names."""
    teams, admin_of = set(), set()
    for g in hub_groups:
        if not g.startswith(TEAM_GROUP_PREFIX):
            continue
        name = g[len(TEAM_GROUP_PREFIX) :]
        if name.endswith(TEAM_ADMIN_SUFFIX):
            admin_of.add(name[: -len(TEAM_ADMIN_SUFFIX)])
        else:
            teams.add(name)
    return teams, admin_of


@runtime_checkable
class TierGrantSource(Protocol):
    """Where platform-admin tier grants are stored (the quota database implements this)."""

    def granted_tier(self, username: str) -> str | None:
        """The tier granted to ``username``, or None when no grant exists."""
        ...


class NoGrants:
    """A grant source with no grants: everybody gets what the IdP mapping or default says."""

    def granted_tier(self, username: str) -> str | None:
        return None


class StaticGrants:
    """Grants from a mapping (username -> tier); for configs without the quota database."""

    def __init__(self, grants: dict[str, str]):
        self._grants = dict(grants)

    def granted_tier(self, username: str) -> str | None:
        return self._grants.get(username)


def _format_error(path: Path, exc: ValidationError) -> str:
    lines = [f"invalid tier policy {path}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


def parse_policy(data: object, source: Path | str = "<memory>") -> Policy:
    """Validate an already-parsed policy document."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_format_error(Path(str(source)), exc)) from None


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Load and validate the policy: ``path``, else ``$ROMAN_POLICY_FILE``, else the bundled one.

    The spawner, the authenticator, the gateway and the quota service all call it without
    ``path`` (there is no per-component setting), so one variable decides for every process;
    ``path`` is for tools and tests that read a given file (``environments --policy``).

    Cached per resolved path, so the many readers in one process share one object.
    """
    chosen = Path(path or os.environ.get(POLICY_ENV) or DEFAULT_POLICY_PATH).resolve()
    return _load_cached(chosen, chosen.stat().st_mtime_ns if chosen.exists() else 0)


@lru_cache(maxsize=8)
def _load_cached(path: Path, _mtime: int) -> Policy:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"cannot read tier policy {path}: {exc.strerror}") from None
    from platform_lib.safe_yaml import YamlLimitError, safe_load

    try:
        data = safe_load(text, source=f"tier policy {path}")  # duplicate keys refused
    except YamlLimitError as exc:
        raise PolicyError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"tier policy {path} is not valid YAML: {exc}") from None
    return parse_policy(data, path)
