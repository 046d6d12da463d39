"""Operator arguments checked and typed where a task starts, before anything is requested or written.

Jinja renders a templated field to text (``page_size="{{ params.size }}"`` arrives as ``"500"``, a templated
list as ``"[1, 2]"``), so numbers and lists are accepted as text too. Anything else is a
:class:`CPluginConfigError` naming the argument, instead of a ``TypeError``/``range() arg 3`` from deep inside.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import pendulum

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.paging import MAX_PAGE_LIMIT

_WHOLE = re.compile(r"[+-]?\d+")
_SEPARATORS = re.compile(r"[,;\s]+")


def whole_number(value: Any, field: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """An ``int`` (or its decimal text) within ``[minimum, maximum]``; booleans and fractions are refused."""
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise CPluginConfigError(field, f"must be a whole number, got {value!r}")
    if number < minimum or (maximum is not None and number > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise CPluginConfigError(field, f"must be >= {minimum}{upper}, got {value!r}")
    return number


def page_size(value: Any) -> int:
    """Records per API page: 1 to the API's cap."""
    return whole_number(value, "page_size", maximum=MAX_PAGE_LIMIT)


def logins(value: Any, field: str = "logins") -> list[int]:
    """Account numbers as sorted unique ints from a list, or text such as ``"1001, 1002"`` / ``"[1001, 1002]"``.

    ``None`` or an empty list/text means "not given" (``[]``). A single bad item fails the whole argument: a
    login silently dropped is an account silently missing from the landing.
    """
    if value is None:
        return []
    items: Iterable[Any]
    if isinstance(value, str):
        items = [part for part in _SEPARATORS.split(value.strip().removeprefix("[").removesuffix("]")) if part]
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        raise CPluginConfigError(field, f"must be a list of login numbers or comma-separated text, got {value!r}")
    out: set[int] = set()
    for item in items:
        text = item.strip().strip("'\"") if isinstance(item, str) else item
        try:
            out.add(whole_number(text, field))
        except CPluginConfigError:
            raise CPluginConfigError(field, f"{item!r} is not a login number (a whole number >= 1)") from None
    return sorted(out)


def moment(value: Any, field: str) -> datetime:
    """A point in time (``datetime`` or ISO 8601 text) in UTC; naive values are taken as UTC."""
    if isinstance(value, datetime):
        return pendulum.instance(value).in_timezone("UTC")
    if not isinstance(value, str) or not value.strip():
        raise CPluginConfigError(field, f"must be a datetime or ISO 8601 text, got {value!r}")
    try:
        # exact: a bare time ("10:00") stays a Time instead of becoming today's date, a bound that moves with the
        # wall clock (reruns would land another interval).
        parsed: object = pendulum.parse(value.strip(), exact=True)
    except (ValueError, OverflowError) as err:  # pendulum's ParserError is a ValueError
        raise CPluginConfigError(field, f"{value!r} is not an ISO 8601 datetime ({err})") from None
    if isinstance(parsed, date) and not isinstance(parsed, datetime):
        parsed = datetime(parsed.year, parsed.month, parsed.day)  # a date: its midnight, UTC like naive text
    if not isinstance(parsed, datetime):
        raise CPluginConfigError(field, f"{value!r} is a {type(parsed).__name__}, not a datetime")
    return pendulum.instance(parsed).in_timezone("UTC")
