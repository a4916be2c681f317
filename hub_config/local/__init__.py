"""The embedded local platform: ``roman-platform up`` on one machine (see docs/local-platform.md).

The supervisor (:mod:`.supervisor`) owns the state folder (:mod:`.state`), reads platform.yaml
(:mod:`.config`), writes the settings file the hub and gateway configs read (:mod:`.settings`)
and starts/stops the components (:mod:`hub_config.processes`). The TAP service it runs lives in
:mod:`hub_config.tap` (the chart runs it too); :mod:`.tap_platform` is its one-machine wiring.
"""
