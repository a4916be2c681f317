"""Allocations, usage accounting and the team admin service, in three layers.

``storage`` is the record of who may use how much (the database, its migrations) and the clients
of the outside systems; ``services`` holds the rules: the operations on tiers, teams, allocations
and requests, the usage ledger and its sampler, and ``enforcement`` (what the spawner and the
gateway ask before they start anything); ``handlers`` is the HTTP side of the JupyterHub service
people use to look at and manage all of it (``service`` runs it). See docs/quotas.md.
"""
