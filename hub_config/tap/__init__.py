"""The TAP/ObsCore service: GAVO DaCHS over PostgreSQL + pgSphere, its hub-facing proxy, the
index publisher.

The same code runs in both set-ups: the one-machine platform's supervisor runs it as a component
(:mod:`hub_config.local.tap_platform`), and the Helm chart's tap image runs it in pods
(``python -m hub_config.tap.cluster postgres|dachs|publish``, ``python -m hub_config.tap.proxy``).
So nothing here imports the one-machine package (:mod:`hub_config.local`) or the mode modules
(tests/test_layers.py). The parts, bottom up:

* :mod:`.schema`: what DaCHS and PostgreSQL read (the resource descriptor, the row policy);
* :mod:`.catalog`: the accounts and rows of a running instance, :func:`~.catalog.publish_index`;
* :mod:`.service`: :class:`~.service.TapService`, the PostgreSQL and DaCHS processes and their
  idempotent set-up (``dachs_serve.py`` is DaCHS's launcher, run by Debian's Python);
* :mod:`.publisher`: :class:`~.publisher.IndexPublisher`, the store's index kept published;
* :mod:`.cluster`: the chart's pods' commands and :func:`~.cluster.attach_from_env`;
* :mod:`.proxy`: the hub service ``tap`` users reach with their hub token.
"""
