"""Names the platform derives from a hub username, shared by both modes and the quota service.

A neutral module (it imports nothing of the platform): the local spawner names each user's home
folder with :func:`user_folder_name`, the S3 identities and store URLs use it for the user's
prefix, and the quota service's home-storage measurement reads the folders back by it.
"""

from __future__ import annotations

from urllib.parse import quote


def user_folder_name(username: str) -> str:
    """A single, safe path component for any hub username (no '/', no '..', no hidden names)."""
    name = quote(username, safe="@+-_")
    return name if not name.startswith(".") else "%2E" + name[1:]
