"""Data quirks the real service has or may have, switched on per emulator (``--quirks``, ``EmulatorProcess(quirks=)``,
``$CPLUGIN_EMULATOR_QUIRKS``) so the provider can be tested against each.

* ``dotnet_min_date``: unset datetimes are .NET's ``DateTime.MinValue`` ``0001-01-01T00:00:00`` (default: the
  MT4-style ``1970-01-01T00:00:00Z``).
* ``naive_datetimes``: every REST datetime without an offset (a .NET ``DateTime`` of kind Unspecified), still UTC.
* ``local_server_time``: ``ServerTime`` in the server's local time without an offset (the reference leaves it open).
* ``http400_validation``: a bad parameter is answered HTTP 400 with ASP.NET Core's ValidationProblemDetails
  (``[ApiController]``'s automatic answer) instead of HTTP 200 + a ``Validation`` envelope. A fault rule with
  ``"quirks": ["http400_validation"]`` does it for the requests it matches only.

Hub payloads keep their shape: the quirks are about the REST models.
"""

from __future__ import annotations

import os

DOTNET_MIN_DATE = "dotnet_min_date"
NAIVE_DATETIMES = "naive_datetimes"
LOCAL_SERVER_TIME = "local_server_time"
HTTP400_VALIDATION = "http400_validation"
ALL_QUIRKS = (DOTNET_MIN_DATE, NAIVE_DATETIMES, LOCAL_SERVER_TIME, HTTP400_VALIDATION)
# Quirks a fault rule may switch on for single requests (the data quirks shape the whole data set).
PER_REQUEST_QUIRKS = frozenset({HTTP400_VALIDATION})
QUIRKS_ENV = "CPLUGIN_EMULATOR_QUIRKS"


def parse_quirks(text: str) -> frozenset[str]:
    """``"a,b"``, ``"all"`` or ``""``/``"none"`` -> the set of quirk names; an unknown name is a ``ValueError``."""
    names = {part.strip().lower() for part in text.split(",")} - {"", "none"}
    if "all" in names:
        return frozenset(ALL_QUIRKS)
    unknown = names - set(ALL_QUIRKS)
    if unknown:
        raise ValueError(f"unknown emulator quirks {sorted(unknown)} (known: {', '.join(ALL_QUIRKS)}, all)")
    return frozenset(names)


def quirks_from_env() -> frozenset[str]:
    """The quirks of ``$CPLUGIN_EMULATOR_QUIRKS``: the default of every emulator config and process, so a whole test
    run plays them without touching a test (its own ``Dataset`` then agrees with the emulator it starts)."""
    return parse_quirks(os.environ.get(QUIRKS_ENV, ""))


def format_quirks(quirks: frozenset[str]) -> str:
    """Canonical ``--quirks`` value (the order of ``ALL_QUIRKS``)."""
    return ",".join(q for q in ALL_QUIRKS if q in quirks)
