"""Tier-aware spawning: the options form, the server-side checks, and the limits applied.

One mixin, :class:`TierSpawnerMixin`, does what every spawner must: it reads the user's tier from
their hub groups (set by the authenticator; never from the request), offers only that tier's
profiles, and refuses with a 403 anything a forged form or API call asks beyond them (a profile
of another tier, a different image, an unknown option, more servers than the tier allows, a
software environment the policy does not offer or this spawner cannot start) before anything
is started. The chosen environment (docs/environments.md) reaches the server as
``ROMAN_ENVIRONMENT``; Kubernetes runs its image, the local platform its local Python
environment (hub_config.environments). The concrete classes apply the chosen profile:

* :class:`TierKubeSpawner`: cpu/memory guarantee and limit, ``nvidia.com/gpu``, home volume size,
  a size-limited scratch volume, node selector and tolerations.
* :class:`TierLocalSpawnerMixin` (combined with the local platform's process spawner): memory and
  CPU limits through cgroup v1 when the hub may create cgroups, else an address-space rlimit and a
  CPU-affinity cap; GPUs, images and volume sizes cannot be enforced by local processes, and
  :meth:`TierLocalSpawnerMixin.local_enforcement` says so in the server's environment and log.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tornado import web
from traitlets import List, Unicode, default
from traitlets.config import LoggingConfigurable

from hub_config.policy import Policy, ServerProfile, SoftwareEnvironment, Tier, load_policy
from platform_lib import env_contract

#: Options a request may carry. Anything else is refused rather than silently ignored.
ALLOWED_OPTIONS = frozenset({"profile", "image", "team", "environment"})  # team: quota (issue 5)
#: The server's (and its Dask workers') environment variable naming the chosen environment.
ENVIRONMENT_VAR = env_contract.ENVIRONMENT

if TYPE_CHECKING:
    # The mixins are only ever combined with a JupyterHub Spawner (first in the bases): type
    # them as one, so ``self.user``, ``self.environment`` and the ``super()`` hooks are known.
    from jupyterhub.spawner import Spawner as _MixinBase
else:
    _MixinBase = LoggingConfigurable

# A check run after the tier checks, before anything starts: (spawner, tier, profile_name,
# profile) -> None, raising web.HTTPError to refuse. The quota service adds its own here.
SpawnCheck = Callable[[Any, str, str, ServerProfile], Any]


class SpawnRefused(web.HTTPError):
    """A spawn the tier policy does not allow (HTTP 403, message shown to the user)."""

    def __init__(self, message: str):
        super().__init__(403, message, reason="Forbidden by tier policy")
        self.jupyterhub_message = message


class TierSpawnerMixin(_MixinBase):
    """Mixin for any JupyterHub Spawner. Put it first in the bases (traits need HasTraits)."""

    if TYPE_CHECKING:  # Spawner traits this mixin reassigns (typed for the checker only)
        environment: dict[str, Any]
        cmd: list[str]

    spawn_checks: List[SpawnCheck] = List(
        config=True,
        help="Extra checks (e.g. quota) run before start: f(spawner, tier, profile_name, profile)",
    )

    # The hub stores what was applied, so reading it back needs no second policy lookup.
    tier_name = Unicode("")
    profile_name = Unicode("")
    charge_team = Unicode("")  # quota (issue 5): the team this server is charged to, "" = personal
    environment_name = Unicode("")  # issue 18: the software environment (release) chosen

    @property
    def policy(self) -> Policy:
        return load_policy()  # $ROMAN_POLICY_FILE, else the bundled one (hub_config.policy)

    def user_tier(self) -> str:
        """The tier from the hub user's groups (the authenticator keeps exactly one tier group)."""
        return self.policy.tier_of_groups([g.name for g in self.user.groups])

    # ------------------------------------------------------------------ the form
    @default("options_form")
    def _tier_options_form_default(self) -> Callable[[Any], str]:
        return lambda spawner: spawner.render_profiles_form()

    def render_profiles_form(self) -> str:
        policy = self.policy
        tier_name = self.user_tier()
        tier = policy.tier(tier_name)
        items = []
        for i, (name, p) in enumerate(policy.profiles_for(tier_name).items()):
            gpu = f", {p.gpus} GPU" if p.gpus else ""
            items.append(
                f'<div class="form-check roman-profile">'
                f'<input class="form-check-input" type="radio" name="profile" id="profile-{name}" '
                f'value="{html.escape(name)}"{" checked" if i == 0 else ""}>'
                f'<label class="form-check-label" for="profile-{name}"><strong>'
                f"{html.escape(p.display_name)}</strong> &mdash; {html.escape(p.description)} "
                f"<small>({p.cpu_limit:g} cores, {p.mem_limit_gib:g} GiB{gpu}, "
                f"home {p.home_gib:g} GiB, scratch {p.scratch_gib:g} GiB)</small></label></div>"
            )
        items.append(self.render_environments_form())
        # Quota (issue 5): which allocation to charge, personal or one of the user's teams.
        from hub_config.policy import teams_of_groups

        teams = sorted(teams_of_groups([g.name for g in self.user.groups])[0])
        if teams:
            opts = "".join(
                f'<option value="{html.escape(t)}">team {html.escape(t)}</option>' for t in teams
            )
            items.append(
                f'<p><label for="roman-team">Charge to</label> <select name="team" id="roman-team">'
                f'<option value="">my personal allocation</option>{opts}</select></p>'
            )
        return (
            f'<p>Your tier: <strong id="roman-tier">{html.escape(tier.display_name)}</strong>. '
            f"Servers at once: {tier.max_named_servers}.</p>" + "".join(items)
        )

    def environment_unavailable(self, env: SoftwareEnvironment) -> str | None:
        """Why ``env`` cannot start on this spawner (None: it can). Every environment can where
        each has its own image (Kubernetes); the local mixin narrows this."""
        return None

    def render_environments_form(self) -> str:
        """The choice of software environment: the policy's, the default checked; those this
        spawner cannot start are shown, disabled, with the reason."""
        envs = self.policy.environments
        if not envs:
            return ""
        rows = []
        for env in envs:
            why = self.environment_unavailable(env)
            v = env.versions
            ident = "environment-" + "".join(ch if ch.isalnum() else "-" for ch in env.name)
            state = (" checked" if env.default and not why else "") + (" disabled" if why else "")
            note = f' <small class="text-muted">({html.escape(why)})</small>' if why else ""
            rows.append(
                f'<div class="form-check roman-environment">'
                f'<input class="form-check-input" type="radio" name="environment" id="{ident}" '
                f'value="{html.escape(env.name)}"{state}>'
                f'<label class="form-check-label" for="{ident}"><strong>'
                f"{html.escape(env.name)}</strong>{' (default)' if env.default else ''} &mdash; "
                f"{html.escape(env.description)} <small>(romancal {html.escape(v.romancal)}, "
                f"romanisim {html.escape(v.romanisim)}, roman_datamodels "
                f"{html.escape(v.roman_datamodels)}, CRDS {html.escape(v.crds_context)})</small>"
                f"{note}</label></div>"
            )
        return '<p class="roman-environments"><strong>Environment</strong></p>' + "".join(rows)

    @default("options_from_form")
    def _tier_options_from_form_default(
        self,
    ) -> Callable[[dict[str, list[str]]], dict[str, str | list[str]]]:
        # Keep every submitted field so validation sees (and refuses) forged extras.
        # (Underscore fields such as _xsrf belong to the form machinery, not to the server.)
        return lambda formdata: {
            k: (v[0] if isinstance(v, list) and v else v)
            for k, v in formdata.items()
            if not k.startswith("_")
        }

    # ------------------------------------------------------------------ validation
    @default("apply_user_options")
    def _tier_apply_default(self) -> Callable[[Any, dict[str, Any]], Any]:
        return lambda spawner, options: spawner.apply_tier_options(options)

    def validate_tier_options(
        self, options: dict[str, Any]
    ) -> tuple[str, Tier, str, ServerProfile]:
        """Decide what may start; raise SpawnRefused (403) with a clear message otherwise."""
        policy = self.policy
        tier_name = self.user_tier()
        tier = policy.tier(tier_name)
        options = dict(options or {})
        unknown = sorted(set(options) - ALLOWED_OPTIONS)
        if unknown:
            raise SpawnRefused(
                f"Unknown server option(s) {unknown}; allowed: {sorted(ALLOWED_OPTIONS)}"
            )
        allowed = policy.profiles_for(tier_name)
        name = options.get("profile") or next(iter(allowed))
        if not isinstance(name, str) or name not in allowed:
            raise SpawnRefused(
                f"Profile {name!r} is not available to the {tier.display_name} tier "
                f"(allowed: {', '.join(allowed)})"
            )
        profile = allowed[name]
        env = self.validate_environment(options)
        runs = policy.image_for(profile, env.name if env else None)
        image = options.get("image")
        if image is not None and image != runs:
            raise SpawnRefused(
                f"Image {image!r} is not allowed for profile {name!r}; it runs {runs!r}"
            )
        others = [
            s
            for n, s in self.user.spawners.items()
            if n != self.name and s is not self and s.active
        ]
        if len(others) + 1 > tier.max_named_servers:
            raise SpawnRefused(
                f"The {tier.display_name} tier may run {tier.max_named_servers} server(s) at once; "
                f"{len(others)} already running. Stop one first."
            )
        return tier_name, tier, name, profile

    async def run_auth_state_hook(self, auth_state: dict[str, Any] | None) -> None:
        """Give the server's git the user's identity from the login, as fallbacks only.

        ``EMAIL`` is git's last resort before guessing ``user@host`` (which it refuses in a
        container, so jupyterlab-git could not even make a repository's first commit). A user's
        own ``git config user.email`` still wins; ``GIT_AUTHOR_*`` would override it.
        """
        await super().run_auth_state_hook(auth_state)
        who = (auth_state or {}).get("roman") or {}
        if who.get("email"):
            self.environment = {**self.environment, "EMAIL": who["email"]}

    def validate_environment(self, options: dict[str, Any]) -> SoftwareEnvironment | None:
        """The environment asked for (none asked: the default); SpawnRefused (403) for a name
        the policy does not offer or one this spawner cannot start. None: the policy lists none."""
        policy = self.policy
        if not policy.environments:
            if options.get("environment"):
                raise SpawnRefused(
                    "This platform offers no choice of environment; remove the environment option"
                )
            return None
        default = policy.default_environment
        name = options.get("environment") or (default.name if default else None)
        if not isinstance(name, str) or name not in policy.environment_names:
            raise SpawnRefused(
                f"Environment {name!r} is not offered (available: "
                f"{', '.join(policy.environment_names)})"
            )
        env = policy.environment(name)
        why = self.environment_unavailable(env)
        if why:
            raise SpawnRefused(f"Environment {name} cannot start here: {why}")
        return env

    async def apply_tier_options(self, options: dict[str, Any]) -> None:
        tier_name, tier, name, profile = self.validate_tier_options(options)
        # Quota (issue 5): the team to charge; the quota check validates it server side.
        team = options.get("team") or ""
        if not isinstance(team, str) or len(team) > 64:
            raise SpawnRefused("The team option must be a team name")
        self.charge_team = team
        for check in self.spawn_checks:
            result = check(self, tier_name, name, profile)
            if hasattr(result, "__await__"):
                await result
        env = self.validate_environment(options)
        self.tier_name, self.profile_name = tier_name, name
        self.environment_name = env.name if env else ""
        self.user_options = {
            "profile": name,
            **({"environment": env.name} if env else {}),
            **({"team": team} if team else {}),
        }
        self.environment = {
            **self.environment,
            env_contract.TIER: tier_name,
            env_contract.PROFILE: name,
            **({ENVIRONMENT_VAR: env.name} if env else {}),
        }
        self.apply_environment(env)
        self.apply_profile(profile)

    def apply_environment(self, env: SoftwareEnvironment | None) -> None:
        """Run the server in ``env``; Kubernetes does it with the image (apply_kube_profile)."""

    def apply_profile(self, profile: ServerProfile) -> None:
        """Set the generic Spawner resource traits; subclasses add what they can enforce."""
        self.cpu_limit = float(profile.cpu_limit)
        self.cpu_guarantee = float(profile.cpu_guarantee)
        self.mem_limit = profile.mem_limit_bytes
        self.mem_guarantee = profile.mem_guarantee_bytes
