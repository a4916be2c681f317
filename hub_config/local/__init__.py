"""The embedded local platform: ``roman-platform up`` on one machine (see docs/local-platform.md).

The supervisor (:mod:`.supervisor`) owns the state folder (:mod:`.state`), reads platform.yaml
(:mod:`.config`), writes the settings file the hub and gateway configs read (:mod:`.settings`)
and starts/stops the components (:mod:`.processes`).
"""
