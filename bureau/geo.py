"""Great-circle distances for "nearest station / job" answers."""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Distance in kilometres between two WGS-84 points (degrees)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lng2 - lng1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def valid_point(lat: float | None, lng: float | None) -> bool:
    """True when both coordinates are present and inside their ranges."""
    if lat is None or lng is None:
        return False
    return -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0


def distance_km(lat: float, lng: float, other_lat: float | None, other_lng: float | None) -> float | None:
    """Distance to a point that may lack coordinates (None then)."""
    if other_lat is None or other_lng is None or not valid_point(other_lat, other_lng):
        return None
    return haversine_km(lat, lng, other_lat, other_lng)
