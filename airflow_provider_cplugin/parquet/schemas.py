"""One Arrow schema per entity, declared once and shared by operators, the hub trigger and tests.

Each entity lists its fields by their **wire name** (camelCase, as the WebAPI sends them) and Arrow type; the
Parquet column is the snake_case form of the wire name (analysts query ``registration_date``, not
``registrationDate``) and keeps the wire name in the field metadata. Datetimes land as UTC microsecond timestamps
(MT5's ``*Msc`` millisecond epochs as UTC millisecond timestamps); money and prices as float64 because MetaTrader
itself stores them as doubles (a decimal would pretend to a precision the source never had).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import pyarrow as pa

INT = pa.int64()
FLOAT = pa.float64()
STR = pa.string()
BOOL = pa.bool_()
TS = pa.timestamp("us", tz="UTC")
MSC = pa.timestamp("ms", tz="UTC")
"""MT5 ``*Msc`` fields: millisecond epochs the API sends as strings (``"1767225600123"``)."""

EXTRA_COLUMN = "_extra"
"""JSON text of fields the API sent that the schema does not know (schema drift is kept, never a crash)."""

ExtraPolicy = Literal["json", "drop"]

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(wire_name: str) -> str:
    """``registrationDate`` → ``registration_date``, ``lastIP`` → ``last_ip``, ``eMail`` → ``e_mail``."""
    return _CAMEL_BOUNDARY.sub("_", wire_name).lower()


@dataclass(frozen=True)
class EntitySchema:
    """The declared shape of one entity as it lands in Parquet."""

    name: str
    fields: tuple[tuple[str, pa.DataType], ...]
    key: tuple[str, ...]
    """Wire names that identify a row; never null, used to sort and to de-duplicate."""
    extra: ExtraPolicy = "json"
    description: str = ""
    wire_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire_names", tuple(name for name, _ in self.fields))
        unknown_keys = set(self.key) - set(self.wire_names)
        if unknown_keys:
            raise ValueError(f"{self.name}: key fields {sorted(unknown_keys)} are not declared")

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        cols = [
            pa.field(
                snake_case(name),
                dtype,
                nullable=name not in self.key,
                metadata={"wire_name": name},
            )
            for name, dtype in self.fields
        ]
        if self.extra == "json":
            cols.append(pa.field(EXTRA_COLUMN, STR, metadata={"wire_name": "*"}))
        return pa.schema(cols, metadata={"entity": self.name})

    def describe(self) -> dict[str, str]:
        """Small, JSON-friendly ``{column: type}`` map for XCom."""
        return {f.name: str(f.type) for f in self.arrow_schema}


def _entity(
    name: str, key: tuple[str, ...], fields: list[tuple[str, pa.DataType]], description: str = ""
) -> EntitySchema:
    return EntitySchema(name=name, fields=tuple(fields), key=key, description=description)


MT4_USER = _entity(
    "mt4_users",
    ("login",),
    [
        ("login", INT),
        ("group", STR),
        ("name", STR),
        ("registrationDate", TS),
        ("lastDate", TS),
        ("externalId", STR),
        ("status", STR),
        ("country", STR),
        ("city", STR),
        ("state", STR),
        ("zipCode", STR),
        ("address", STR),
        ("leadSource", STR),
        ("phone", STR),
        ("email", STR),
        ("comment", STR),
        ("leverage", INT),
        ("agentAccount", INT),
        ("lastIP", INT),
        ("balance", FLOAT),
        ("credit", FLOAT),
        ("prevMonthBalance", FLOAT),
        ("prevBalance", FLOAT),
        ("prevMonthEquity", FLOAT),
        ("prevEquity", FLOAT),
        ("interestRate", FLOAT),
        ("taxes", FLOAT),
        ("enableFlags", INT),
        ("sendReports", INT),
        ("mqid", INT),
        ("userColor", INT),
    ],
    "MT4User (UsersRequest, UserRecordsRequest, UserRecordGet)",
)

_MT4_TRADE_FIELDS: list[tuple[str, pa.DataType]] = [
    ("order", INT),
    ("login", INT),
    ("symbol", STR),
    ("digits", INT),
    ("tradeCommand", STR),
    ("volume", INT),
    ("volumeLots", FLOAT),
    ("tradeRecordState", STR),
    ("openPrice", FLOAT),
    ("sl", FLOAT),
    ("tp", FLOAT),
    ("openTime", TS),
    ("closeTime", TS),
    ("closePrice", FLOAT),
    ("commission", FLOAT),
    ("commissionAgent", FLOAT),
    ("storage", FLOAT),
    ("profit", FLOAT),
    ("taxes", FLOAT),
    ("magic", INT),
    ("comment", STR),
    ("expiration", TS),
    ("tradeRecordReason", STR),
    ("activationType", STR),
    ("timeStamp", TS),
    ("marginRate", FLOAT),
]

MT4_OPEN_TRADE = _entity("mt4_open_trades", ("order",), _MT4_TRADE_FIELDS, "MT4Trade, open (TradesGet)")
MT4_TRADE_HISTORY = _entity(
    "mt4_trade_history", ("order",), _MT4_TRADE_FIELDS, "MT4Trade, closed (ReportsRequest / TradesUserHistory)"
)

MT4_ONLINE = _entity("mt4_online", ("login",), [("login", INT), ("group", STR)], "MT4Online (OnlineGet)")

MT4_MARGIN_LEVEL = _entity(
    "mt4_margin_levels",
    ("login",),
    [
        ("login", INT),
        ("group", STR),
        ("leverage", INT),
        ("updated", INT),
        ("balance", FLOAT),
        ("equity", FLOAT),
        ("volume", FLOAT),
        ("margin", FLOAT),
        ("free", FLOAT),
        ("level", FLOAT),
        ("controllingType", STR),
        ("levelType", STR),
    ],
    "MT4MarginLevel (MarginsGet); `updated` is MT4 unix time in server-local seconds, kept as sent",
)

MT4_SYMBOL = _entity(
    "mt4_symbols",
    ("symbol",),
    [
        ("symbol", STR),
        ("description", STR),
        ("source", STR),
        ("currency", STR),
        ("marginCurrency", STR),
        ("type", INT),
        ("digits", INT),
        ("tradeMode", STR),
        ("contractSize", FLOAT),
        ("tickValue", FLOAT),
        ("tickSize", FLOAT),
        ("point", FLOAT),
        ("spread", INT),
        ("stopsLevel", INT),
        ("freezeLevel", INT),
        ("swapType", STR),
        ("swapLong", FLOAT),
        ("swapShort", FLOAT),
        ("marginInitial", FLOAT),
        ("marginMaintenance", FLOAT),
        ("marginHedged", FLOAT),
        ("profitCalculationMode", STR),
        # The rest of MT4SymbolConfig (SDK 0.2.1 mT4SymbolConfig.d.ts), declared so a normal answer is no drift.
        ("backgroundColor", INT),
        ("count", INT),
        ("countOriginal", INT),
        ("realtime", INT),
        ("starting", TS),
        ("expiration", TS),
        ("filter", INT),
        ("filterCounter", INT),
        ("filterLimit", FLOAT),
        ("filterSmoothing", INT),
        ("logging", INT),
        ("spreadBalance", INT),
        ("symbolExecMode", STR),
        ("swapEnable", INT),
        ("swapRollover3Days", INT),
        ("gtcMode", STR),
        ("marginCalculationMode", STR),
        ("marginDivider", FLOAT),
        ("percentage", FLOAT),
        ("multiply", FLOAT),
        ("bidTickValue", FLOAT),
        ("askTickValue", FLOAT),
        ("longOnly", INT),
        ("instantMaxVolume", INT),
        ("marginHedgedStrong", INT),
        ("valueDate", TS),
        ("quotesDelay", INT),
        ("swapOpenPrice", INT),
        ("swapVariationMargin", INT),
    ],
    "MT4SymbolConfig (CfgRequestSymbol)",
)

MT5_USER = _entity(
    "mt5_users",
    ("login",),
    [
        ("login", INT),
        ("group", STR),
        ("name", STR),
        ("company", STR),
        ("country", STR),
        ("city", STR),
        ("state", STR),
        ("zipCode", STR),
        ("phone", STR),
        ("eMail", STR),
        ("comment", STR),
        ("color", INT),
        ("leverage", INT),
        ("account", STR),
        ("language", INT),
        ("address", STR),
        ("id", STR),
        ("status", STR),
        ("agent", INT),
        ("leadCampaign", STR),
        ("leadSource", STR),
        ("clientID", INT),
        ("firstName", STR),
        ("lastName", STR),
        ("middleName", STR),
        ("rights", STR),
        ("certSerialNumber", INT),
        ("registration", TS),
        ("lastAccess", TS),
        ("lastPassChange", TS),
        ("lastIP", STR),
        ("balance", FLOAT),
        ("credit", FLOAT),
        ("interestRate", FLOAT),
        ("commissionDaily", FLOAT),
        ("commissionMonthly", FLOAT),
        ("commissionAgentDaily", FLOAT),
        ("commissionAgentMonthly", FLOAT),
        ("balancePrevDay", FLOAT),
        ("balancePrevMonth", FLOAT),
        ("equityPrevDay", FLOAT),
        ("equityPrevMonth", FLOAT),
    ],
    "MT5User (UserGet)",
)

MT5_POSITION = _entity(
    "mt5_positions",
    ("position",),
    [
        ("position", INT),
        ("login", INT),
        ("symbol", STR),
        ("action", STR),
        ("digits", INT),
        ("digitsCurrency", INT),
        ("contractSize", FLOAT),
        ("externalId", STR),
        ("timeCreate", TS),
        ("timeUpdate", TS),
        ("timeCreateMsc", MSC),
        ("timeUpdateMsc", MSC),
        ("priceOpen", FLOAT),
        ("priceCurrent", FLOAT),
        ("priceSL", FLOAT),
        ("priceTP", FLOAT),
        ("volume", INT),
        ("volumeExt", INT),
        ("profit", FLOAT),
        ("storage", FLOAT),
        ("rateProfit", FLOAT),
        ("rateMargin", FLOAT),
        ("expertId", INT),
        ("expertPositionId", INT),
        ("comment", STR),
        ("dealer", INT),
        ("activationMode", STR),
        ("activationTime", TS),
        ("activationPrice", FLOAT),
        ("activationFlags", STR),
        ("modificationFlags", STR),
        ("reason", STR),
    ],
    "MT5Position (PositionByGroup)",
)

MT5_ORDER = _entity(
    "mt5_orders",
    ("order",),
    [
        ("order", INT),
        ("externalID", STR),
        ("login", INT),
        ("dealer", INT),
        ("partyID", INT),
        ("symbol", STR),
        ("digits", INT),
        ("digitsCurrency", INT),
        ("contractSize", FLOAT),
        ("state", STR),
        ("reason", STR),
        ("timeSetup", TS),
        ("timeExpiration", TS),
        ("timeDone", TS),
        ("type", STR),
        ("typeFill", STR),
        ("typeTime", STR),
        ("priceOrder", FLOAT),
        ("priceTrigger", FLOAT),
        ("priceCurrent", FLOAT),
        ("priceSL", FLOAT),
        ("priceTP", FLOAT),
        ("volumeInitial", INT),
        ("volumeCurrent", INT),
        ("expertID", INT),
        ("positionID", INT),
        ("comment", STR),
        ("activationMode", INT),
        ("activationTime", TS),
        ("activationPrice", FLOAT),
        ("activationFlags", STR),
        ("timeSetupMsc", MSC),
        ("timeDoneMsc", MSC),
        ("rateMargin", FLOAT),
        ("positionByID", INT),
        ("modificationFlags", INT),
        ("volumeInitialExt", INT),
        ("volumeCurrentExt", INT),
    ],
    "MT5Order (OrderByGroup)",
)

MT5_DEAL = _entity(
    "mt5_deals",
    ("deal",),
    [
        ("deal", INT),
        ("externalID", STR),
        ("login", INT),
        ("dealer", INT),
        ("partyID", INT),
        ("order", INT),
        ("action", STR),
        ("entry", STR),
        ("digits", INT),
        ("digitsCurrency", INT),
        ("contractSize", FLOAT),
        ("time", TS),
        ("symbol", STR),
        ("price", FLOAT),
        ("priceSL", FLOAT),
        ("priceTP", FLOAT),
        ("volume", INT),
        ("volumeExt", INT),
        ("volumeClosed", INT),
        ("volumeClosedExt", INT),
        ("profit", FLOAT),
        ("value", FLOAT),
        ("storage", FLOAT),
        ("commission", FLOAT),
        ("obsoleteValue", FLOAT),
        ("fee", FLOAT),
        ("rateProfit", FLOAT),
        ("rateMargin", FLOAT),
        ("expertID", INT),
        ("positionID", INT),
        ("comment", STR),
        ("profitRaw", FLOAT),
        ("pricePosition", FLOAT),
        ("tickValue", FLOAT),
        ("tickSize", FLOAT),
        ("flags", INT),
        ("timeMsc", MSC),
        ("reason", STR),
        ("gateway", STR),
        ("priceGateway", FLOAT),
        ("marketBid", FLOAT),
        ("marketAsk", FLOAT),
        ("marketLast", FLOAT),
        ("modificationFlags", STR),
    ],
    "MT5Deal (DealByGroup)",
)

ENTITIES: dict[str, EntitySchema] = {
    e.name: e
    for e in (
        MT4_USER,
        MT4_OPEN_TRADE,
        MT4_TRADE_HISTORY,
        MT4_ONLINE,
        MT4_MARGIN_LEVEL,
        MT4_SYMBOL,
        MT5_USER,
        MT5_POSITION,
        MT5_ORDER,
        MT5_DEAL,
    )
}


def register(entity: EntitySchema) -> EntitySchema:
    """Add an entity declared elsewhere (the hub event schemas) to the shared registry."""
    if entity.name in ENTITIES and ENTITIES[entity.name] != entity:
        raise ValueError(f"entity {entity.name!r} is declared twice with different fields")
    ENTITIES[entity.name] = entity
    return entity
