"""Veterans service stations: the county center, township stations and village stations."""

from __future__ import annotations

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from bureau.geo import distance_km, valid_point
from bureau.models import ServiceStation, WechatUser

_LEVEL_ORDER = case({"county": 0, "township": 1, "village": 2}, value=ServiceStation.level, else_=3)


def nearest_stations(
    session: Session, lat: float, lng: float, limit: int = 3
) -> list[tuple[ServiceStation, float]]:
    """The stations nearest to a point, with their distance in km (stations without coordinates skipped)."""
    if not valid_point(lat, lng):
        return []
    stations = session.scalars(
        select(ServiceStation).where(
            ServiceStation.latitude.is_not(None), ServiceStation.longitude.is_not(None)
        )
    )
    ranked = [
        (station, km)
        for station in stations
        if (km := distance_km(lat, lng, station.latitude, station.longitude)) is not None
    ]
    ranked.sort(key=lambda pair: (pair[1], pair[0].id))
    return ranked[:limit]


def stations_in_township(session: Session, township: str) -> list[ServiceStation]:
    """A township's stations: the township station first, then its village stations by name."""
    return list(
        session.scalars(
            select(ServiceStation)
            .where(ServiceStation.township == township)
            .order_by(_LEVEL_ORDER, ServiceStation.name, ServiceStation.id)
        )
    )


def county_center(session: Session) -> ServiceStation | None:
    """The county service center, the fallback answer for anyone."""
    return session.scalars(
        select(ServiceStation).where(ServiceStation.level == "county").order_by(ServiceStation.id).limit(1)
    ).one_or_none()


def last_location(session: Session, openid: str) -> tuple[float, float] | None:
    """The last location the user shared with the account, if any."""
    user = session.get(WechatUser, openid)
    if user is None or not valid_point(user.last_latitude, user.last_longitude):
        return None
    return (user.last_latitude, user.last_longitude)  # type: ignore[return-value]


def describe(station: ServiceStation, distance_km: float | None = None) -> str:
    """Name, distance, address, phone and hours in a few short lines."""
    head = station.name + (f"（约{distance_km:.1f}公里）" if distance_km is not None else "")
    lines = [head, f"地址：{station.address}"]
    if station.phone:
        lines.append(f"电话：{station.phone}")
    if station.hours:
        lines.append(f"时间：{station.hours}")
    return "\n".join(lines)
