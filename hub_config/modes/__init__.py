"""The hub's two set-ups, one function each; ``jupyterhub_config.py`` calls exactly one.

* :func:`hub_config.modes.local.configure_local` -- one machine (``roman-platform up``): the hub
  starts its proxy, spawns local processes, the supervisor's gateway is an external service.
* :func:`hub_config.modes.kubernetes.configure_kubernetes` -- the Helm chart: the proxy, gateway,
  culler and quota service are their own pods, servers are ``TierKubeSpawner`` pods.

What both share (the hub database, the login, the spawner's common settings, the quota service
and its spawn check) is wired by :mod:`hub_config.modes.common`, which neither mode overrides.
"""
