"""The HTTP layer of the quota service: pages, the JSON API, routes and CSRF handling.

Handlers turn a hub login into an actor, parse the body into a typed model
(:mod:`.schemas`) and call :mod:`..services`; they hold no quota rule of their own.
"""
