"""The one exception type the catalog layer raises for bad input, so callers can tell a bad
image (no WCS, all NaN, no error array, mismatched bands) from a bug."""


class CatalogInputError(ValueError):
    """An input image or table cannot be catalogued; the message says which and why."""
