"""The identity suite's fixtures: see tests/support/identity.py (its helpers, which the test
modules import as ``from tests.support import identity as cf``)."""

from tests.support.identity import identity_stack, stack  # noqa: F401  (fixtures)
