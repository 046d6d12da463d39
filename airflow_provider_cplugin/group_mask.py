"""MetaTrader group masks, shared by the operators' row filter and the emulator (one definition of the syntax).

Comma-separated patterns; ``*`` is any run of characters (the only wildcard); a leading ``!`` excludes; matching
is case-insensitive; ``\\`` is a literal path separator (``real\\*``). A name matches when some include pattern
matches it and no exclude pattern does.
"""

from __future__ import annotations

import re
from functools import lru_cache


class GroupMask:
    def __init__(self, mask: str) -> None:
        self.mask = mask
        self._include: list[re.Pattern[str]] = []
        self._exclude: list[re.Pattern[str]] = []
        for part in (p.strip() for p in mask.split(",")):
            if not part:
                continue
            negate = part.startswith("!")
            body = part[1:] if negate else part
            pattern = re.compile("^" + ".*".join(re.escape(s) for s in body.split("*")) + "$", re.IGNORECASE)
            (self._exclude if negate else self._include).append(pattern)

    def matches(self, name: str) -> bool:
        return any(p.match(name) for p in self._include) and not any(p.match(name) for p in self._exclude)


@lru_cache(maxsize=256)
def group_mask(mask: str) -> GroupMask:
    """The parsed mask (cached: the same few masks are evaluated for every page)."""
    return GroupMask(mask)
