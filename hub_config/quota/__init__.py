"""Allocations, usage accounting and the team admin service.

The database (``models``) is the record of who may use how much; the sampler (``sampler``) turns
what the hub and Dask-Gateway report into the usage ledger (``ledger``); ``enforcement`` is what
the spawner and the gateway ask before they start anything; ``service`` is the JupyterHub service
people use to look at and manage all of it. See docs/quotas.md.
"""
