"""Calendar windows of spend limits, in the program's timezone, as the Lua script sees them.

Day id = days since 1970-01-01 (local); week id = ISO weeks (Monday start) counted the same
way as the script, `(days + 3) // 7`; month id = year * 12 + month; lifetime id = 0.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

EPOCH = date(1970, 1, 1)


def current(tz_name: str, *, now: datetime | None = None) -> dict[str, tuple[str, int, datetime]]:
    """window -> (counter field prefix, window id, window start as an aware UTC datetime)."""
    zone = ZoneInfo(tz_name)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    days = (today - EPOCH).days
    monday = today - timedelta(days=today.weekday())
    first = today.replace(day=1)

    def start(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)

    return {
        "day": ("d", days, start(today)),
        "week": ("w", (days + 3) // 7, start(monday)),
        "month": ("m", today.year * 12 + today.month, start(first)),
        "lifetime": ("l", 0, datetime(1970, 1, 1, tzinfo=UTC)),
    }


def usage_from_counters(
    counters: dict[str, dict[str, str]], tz_name: str
) -> dict[tuple[str, str], tuple[int, int]]:
    """Raw Redis counters -> {(counter, window): (amount used, count used)} for this window."""
    usage = {}
    for counter, fields in counters.items():
        for window, (prefix, window_id, _) in current(tz_name).items():
            same_window = fields.get(f"{prefix}_id") == str(window_id)
            amount = int(fields.get(f"{prefix}_amt", 0)) if same_window else 0
            count = int(fields.get(f"{prefix}_cnt", 0)) if same_window else 0
            usage[(counter, window)] = (amount, count)
    return usage
