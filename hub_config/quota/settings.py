"""Quota service settings, validated at load (pydantic); read from env or a YAML file.

The base allocation each tier gets without asking is part of the tier policy
(``hub_config/policy.yaml``, ``tiers.<name>.base_allocation``), not of these settings: one place
for what a tier means, read here, by the spawner, the gateway and the chart alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from platform_lib import env_contract

SETTINGS_ENV = env_contract.QUOTA_SETTINGS
DB_ENV = env_contract.QUOTA_DB_URL


class QuotaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    db_url: str = Field(default="sqlite:///quota.sqlite", description="SQLAlchemy URL")
    sample_interval_s: float = Field(default=60, gt=0, le=3600)
    grace_period_s: float = Field(default=900, ge=0, le=7 * 86400)
    enforce_interval_s: float = Field(default=60, gt=0, le=3600)
    gateway_db_url: str | None = Field(
        default=None, description="dask-gateway-server's database (read only) for cluster usage"
    )
    gateway_url: str | None = Field(default=None, description="Dask-Gateway API, to stop clusters")
    gateway_kube_namespace: str | None = Field(
        default=None,
        description="on Kubernetes: the namespace of the gateway's DaskClusters and "
        "pods, read for cluster usage (the gateway there has no database)",
    )
    gateway_kube_instance: str | None = Field(
        default=None,
        description="on Kubernetes: the gateway instance label to count "
        "(gateway.dask.org/instance); unset counts every instance in the namespace",
    )
    kube_api_url: str | None = Field(
        default=None, description="Kubernetes API URL; unset means the pod's own (in-cluster) API"
    )
    kube_token_file: str | None = Field(
        default=None, description="bearer token file for kube_api_url"
    )
    homes_dir: str | None = Field(
        default=None, description="local platform: the folder of user homes, measured for storage"
    )
    storage_interval_s: float = Field(
        default=600, gt=0, le=86400, description="seconds between home storage measurements"
    )
    admin_group: str = Field(
        default="roman-platform-admins", description="hub group of platform admins"
    )


class SettingsError(ValueError):
    pass


def load_settings(path: str | os.PathLike[str] | None = None, **overrides) -> QuotaSettings:
    """Settings from ``path`` (or $ROMAN_QUOTA_SETTINGS), then $ROMAN_QUOTA_DB_URL, then overrides."""
    data: dict = {}
    chosen = path or os.environ.get(SETTINGS_ENV)
    if chosen:
        try:
            data = yaml.safe_load(Path(chosen).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"cannot read quota settings {chosen}: {exc}") from None
    if os.environ.get(DB_ENV):
        data["db_url"] = os.environ[DB_ENV]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return QuotaSettings.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"invalid quota settings: {msgs}") from None
