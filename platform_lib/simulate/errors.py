"""The one exception type for inputs a user can fix.

Every check on user input (optical element, catalog columns, fluxes, MA table, footprint)
raises :class:`SimulationInputError` *before* anything is computed or written, so a bad call
loses nothing and the message says what to change.
"""

from __future__ import annotations


class SimulationInputError(ValueError):
    """A simulation request is invalid (unknown optical element, bad catalog, bad MA table...)."""
