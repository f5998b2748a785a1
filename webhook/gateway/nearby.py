"""The answer to a location message: the nearest service stations and open jobs, by distance."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bureau.geo import valid_point
from bureau.services.jobs import jobs_near, salary_text
from bureau.services.stations import nearest_stations


def _km(distance: float) -> str:
    return f"约{distance * 1000:.0f}米" if distance < 1 else f"约{distance:.1f}公里"


def nearby_answer(session: Session, lat: float, lng: float) -> str:
    """A short text listing the nearest stations and jobs (or saying none were found)."""
    if not valid_point(lat, lng):
        return "没能识别您发的位置，请重新发送一次位置。"
    lines: list[str] = []
    stations = nearest_stations(session, lat, lng)
    if stations:
        lines.append("离您最近的退役军人服务站：")
        for number, (station, distance) in enumerate(stations, start=1):
            lines.append(f"{number}. {station.name}（{_km(distance)}）")
            details = "  地址：" + station.address
            if station.phone:
                details += f"，电话：{station.phone}"
            lines.append(details)
    jobs = jobs_near(session, lat, lng, limit=3)
    if jobs:
        lines.append("")
        lines.append("您附近正在招聘的岗位：")
        for number, (job, distance) in enumerate(jobs, start=1):
            lines.append(f"{number}. {job.title}，{job.employer}（{_km(distance)}），{salary_text(job)}")
        lines.append("想看更多岗位，请回复“找工作”。")
    if not lines:
        return "您附近暂时没有找到服务站和岗位信息。可以回复“服务站”查询全县的服务站。"
    return "\n".join(lines).strip()
