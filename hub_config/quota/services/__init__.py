"""The service layer: what may be done to the quota records and what is charged.

Tiers, teams, allocations and requests (each checks the acting user on the server side), the
usage ledger and its sampler, the spawn/cluster checks and the grace-period enforcer. Handlers
(HTTP), the CLI and the hub hooks call these; these call only :mod:`..storage`.
"""
