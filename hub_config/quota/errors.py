"""Errors the quota code raises; the service maps each to one HTTP status."""


class QuotaError(Exception):
    status = 400


class BadInput(QuotaError):
    status = 400


class Forbidden(QuotaError):
    status = 403


class NotFound(QuotaError):
    status = 404


class Conflict(QuotaError):
    status = 409


class QuotaExceeded(QuotaError):
    """A spawn or cluster refused because the allocation it would charge is exhausted/expired."""

    status = 403
