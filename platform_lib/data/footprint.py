"""Sky footprints: exact polygon tests on the sphere, and HEALPix cells for the prefilter.

A product's footprint is the polygon of its detector corners (edges are great-circle arcs, as
in ``S_REGION``). The index keeps, per product, the NESTED HEALPix cells at :data:`ORDER` that
cover it (from ``mocpy``), so a sky query only looks at products sharing a cell with the query;
then the exact tests below decide. Cells are taken generously (the polygon's coverage plus one
ring of neighbours) on both sides: the prefilter may keep too much, never too little.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = [
    "ORDER",
    "parse_s_region",
    "to_s_region",
    "polygon_cells",
    "cone_cells",
    "cone_overlaps_polygon",
    "polygons_overlap",
    "point_in_polygon",
]

#: HEALPix order of the index cells: ~3.4 arcmin, half a WFI detector's width.
ORDER = 10


def _unit(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def parse_s_region(text: str) -> np.ndarray | None:
    """``POLYGON [ICRS] ra1 dec1 ra2 dec2 ...`` → (N, 2) degrees, or None if not a polygon."""
    if not text or "POLYGON" not in text.upper():
        return None
    numbers = [float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]
    if len(numbers) < 6 or len(numbers) % 2:
        return None
    return np.asarray(numbers, dtype=float).reshape(-1, 2)


def to_s_region(vertices: np.ndarray) -> str:
    return "POLYGON ICRS " + " ".join(f"{v:.9f}" for v in np.asarray(vertices).ravel())


def _gnomonic(center: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project unit vectors onto the plane tangent at ``center``: great circles → lines.

    Returns (xy, in_front): points more than 90° from the centre cannot be projected.
    """
    center = center / np.linalg.norm(center)
    helper = np.array([0.0, 0.0, 1.0]) if abs(center[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, center)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(center, e1)
    dot = points @ center
    in_front = dot > 1e-9
    safe = np.where(in_front, dot, 1.0)
    xy = np.stack([(points @ e1) / safe, (points @ e2) / safe], axis=-1)
    return xy, in_front


def _point_in_planar(pt: np.ndarray, poly: np.ndarray) -> bool:
    x, y = pt
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if xc > x:
                inside = not inside
    return inside


def point_in_polygon(ra: float, dec: float, vertices: np.ndarray) -> bool:
    """Whether (ra, dec) lies inside the spherical polygon (less than a hemisphere)."""
    verts = _unit(vertices[:, 0], vertices[:, 1])
    center = verts.mean(axis=0)
    p = _unit(np.array([ra]), np.array([dec]))
    xy, front = _gnomonic(center, np.vstack([verts, p]))
    if not front.all():
        return False
    return _point_in_planar(xy[-1], xy[:-1])


def _edge_distances(p: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Angular distances (radians) from unit vector p to every edge arc of a polygon at once."""
    a, b = verts, np.roll(verts, -1, axis=0)
    n = np.cross(a, b)
    norm = np.linalg.norm(n, axis=1)
    d_end = np.minimum(np.arccos(np.clip(a @ p, -1, 1)), np.arccos(np.clip(b @ p, -1, 1)))
    ok = norm > 1e-15
    n = n / np.where(ok, norm, 1.0)[:, None]
    pn = n @ p
    proj = p[None, :] - pn[:, None] * n
    plen = np.linalg.norm(proj, axis=1)
    ok &= plen > 1e-15
    proj = proj / np.where(plen > 1e-15, plen, 1.0)[:, None]
    on_arc = (
        ok
        & (np.einsum("ij,ij->i", np.cross(a, proj), n) >= 0)
        & (np.einsum("ij,ij->i", np.cross(proj, b), n) >= 0)
    )
    d_perp = np.arcsin(np.clip(np.abs(pn), 0, 1))
    return np.where(on_arc, d_perp, d_end)


def cone_overlaps_polygon(ra: float, dec: float, radius_deg: float, vertices: np.ndarray) -> bool:
    """Exact: the cone and the polygon share at least one point."""
    if point_in_polygon(ra, dec, vertices):
        return True
    p = _unit(np.array(ra), np.array(dec))
    verts = _unit(vertices[:, 0], vertices[:, 1])
    return bool((_edge_distances(p, verts) <= np.radians(radius_deg)).any())


def _segments_cross(p1, p2, q1, q2) -> bool:
    def orient(a, b, c):
        return np.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    o1, o2 = orient(p1, p2, q1), orient(p1, p2, q2)
    o3, o4 = orient(q1, q2, p1), orient(q1, q2, p2)
    return bool(o1 != o2 and o3 != o4)


def polygons_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Exact for polygons within a hemisphere of each other: do they share any point?"""
    va, vb = _unit(a[:, 0], a[:, 1]), _unit(b[:, 0], b[:, 1])
    center = va.mean(axis=0) + vb.mean(axis=0)
    if np.linalg.norm(center) < 1e-9:
        return False
    xy, front = _gnomonic(center, np.vstack([va, vb]))
    if not front.all():
        # more than 90° from the pair's mid-point: too far apart to touch
        return False
    pa, pb = xy[: len(va)], xy[len(va) :]
    if _point_in_planar(pa[0], pb) or _point_in_planar(pb[0], pa):
        return True
    na, nb = len(pa), len(pb)
    for i in range(na):
        for j in range(nb):
            if _segments_cross(pa[i], pa[(i + 1) % na], pb[j], pb[(j + 1) % nb]):
                return True
    return False


def _flatten(moc) -> np.ndarray:
    return np.asarray(moc.add_neighbours().flatten(), dtype=np.int64)


def polygon_cells(vertices: np.ndarray, order: int = ORDER) -> np.ndarray:
    """NESTED HEALPix cells at ``order`` covering the polygon (plus one ring of neighbours)."""
    import astropy.units as u
    from mocpy import MOC

    moc = MOC.from_polygon(vertices[:, 0] * u.deg, vertices[:, 1] * u.deg, max_depth=order)
    # a polygon smaller than a cell may yield an empty coverage: fall back to its vertices
    cells = _flatten(moc) if not moc.empty() else np.empty(0, np.int64)
    vertex_moc = MOC.from_lonlat(
        lon=vertices[:, 0] * u.deg, lat=vertices[:, 1] * u.deg, max_norder=order
    )
    return np.union1d(cells, _flatten(vertex_moc))


def cone_cells(ra: float, dec: float, radius_deg: float, order: int = ORDER) -> np.ndarray:
    import astropy.units as u
    from mocpy import MOC

    moc = MOC.from_cone(
        lon=ra * u.deg, lat=dec * u.deg, radius=radius_deg * u.deg, max_depth=order, delta_depth=2
    )
    centre = MOC.from_lonlat(lon=[ra] * u.deg, lat=[dec] * u.deg, max_norder=order)
    return np.union1d(_flatten(moc), _flatten(centre))
