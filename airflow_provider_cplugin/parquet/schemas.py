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



# --------------------------------------------------------------------------- datasets of a broker's warehouse
# Fields as SDK 0.2.1 declares them (dist/generated/model/*.d.ts). A few columns are *derived* by the operator
# and said so: the row's identity where the wire record has none (a tick's symbol, a bar's symbol and period).

DATE = pa.date32()
JSON = STR
"""Nested SDK structures (MT5 sessions, margin-rate maps, commissions) land as JSON text with sorted keys: their
shapes are maps keyed by data (symbol paths, order types) that an Arrow struct cannot declare ahead, and DuckDB
reads them back with ``json_extract``."""

MT4_DAILY_REPORT = _entity(
    "mt4_daily_reports",
    ("login", "tradingDay"),
    [
        ("login", INT),
        ("tradingDay", DATE),
        ("ctm", TS),
        ("group", STR),
        ("bank", STR),
        ("balancePrev", FLOAT),
        ("balance", FLOAT),
        ("deposit", FLOAT),
        ("credit", FLOAT),
        ("profitClosed", FLOAT),
        ("profit", FLOAT),
        ("equity", FLOAT),
        ("margin", FLOAT),
        ("marginFree", FLOAT),
    ],
    "MT4DailyReport (DailyReportsRequest / DailySyncRead). `ctm` is sent as the server-local midnight of the "
    "trading day; it lands as that instant in UTC (ManagerCommon.timeZone) and `tradingDay` (derived) is the "
    "server-local calendar date",
)

MT4_GROUP = _entity(
    "mt4_groups",
    ("group",),
    [
        ("group", STR),
        ("enable", INT),
        ("timeout", INT),
        ("otpMode", STR),
        ("company", STR),
        ("signature", STR),
        ("supportPage", STR),
        ("supportEmail", STR),
        ("copies", INT),
        ("reports", INT),
        ("defaultLeverage", INT),
        ("defaultDeposit", FLOAT),
        ("maxSecurities", INT),
        ("secMarginsTotal", INT),
        ("currency", STR),
        ("credit", FLOAT),
        ("marginCall", INT),
        ("marginMode", STR),
        ("marginStopout", INT),
        ("interestRate", FLOAT),
        ("useSwap", INT),
        ("newsMode", STR),
        ("groupRights", STR),
        ("checkIEPrices", INT),
        ("maxPositions", INT),
        ("closeReopen", INT),
        ("hedgeProhibited", INT),
        ("closeFIFO", INT),
        ("hedgeLargeLeg", INT),
        ("marginControllingType", STR),
        ("archivePeriod", INT),
        ("archiveMaxBalance", INT),
        ("stopoutSkipHedged", INT),
        ("archivePendingPeriod", INT),
    ],
    "MT4Group (GroupsRequest / GroupsGet; curated: no SMTP credentials, no SecGroups/SecMargins arrays)",
)

MT4_TICK = _entity(
    "mt4_ticks",
    ("symbol", "time", "seq"),
    [
        ("symbol", STR),
        ("time", TS),
        ("seq", INT),
        ("bid", FLOAT),
        ("ask", FLOAT),
        ("dataFeed", INT),
        ("flags", STR),
    ],
    "MT4TickRecord (TicksRequest/{symbol}); `symbol` and `seq` (order among ticks of the same second, as served) "
    "are derived: tick times have second precision",
)

MT4_CHART_BAR = _entity(
    "mt4_chart_bars",
    ("symbol", "period", "time"),
    [
        ("symbol", STR),
        ("period", STR),
        ("time", TS),
        ("open", FLOAT),
        ("high", FLOAT),
        ("low", FLOAT),
        ("close", FLOAT),
        ("volume", INT),
    ],
    "MT4ChartBar (ChartRequest/{symbol}); `symbol` and `period` (M1..Mn1) are derived from the request",
)

MT4_USER_CHANGE = EntitySchema(
    name="mt4_user_changes",
    fields=MT4_USER.fields,
    key=MT4_USER.key,
    description="MT4User modified since the run's watermark (UsersSyncStart / UsersSyncRead)",
)

MT5_GROUP = _entity(
    "mt5_groups",
    ("group",),
    [
        ("group", STR),
        ("server", INT),
        ("permissionsFlags", STR),
        ("authMode", STR),
        ("authPasswordMin", INT),
        ("company", STR),
        ("companyPage", STR),
        ("companyEmail", STR),
        ("companySupportPage", STR),
        ("companySupportEmail", STR),
        ("companyCatalog", STR),
        ("currency", STR),
        ("currencyDigits", INT),
        ("reportsMode", STR),
        ("reportsFlags", STR),
        ("reportsSMTP", STR),
        ("reportsSMTPLogin", STR),
        # reportsSMTPPass is deliberately not declared: the operator drops it before landing (a credential).
        ("newsMode", STR),
        ("newsCategory", STR),
        ("newsLang", pa.list_(INT)),
        ("mailMode", STR),
        ("tradeFlags", STR),
        ("tradeInterestRate", FLOAT),
        ("tradeVirtualCredit", FLOAT),
        ("marginFreeMode", STR),
        ("marginSOMode", STR),
        ("marginCall", FLOAT),
        ("marginStopOut", FLOAT),
        ("demoLeverage", INT),
        ("demoDeposit", FLOAT),
        ("limitHistory", STR),
        ("limitOrders", INT),
        ("limitSymbols", INT),
        ("commissions", JSON),
        ("marginFreeProfitMode", INT),
        ("marginMode", STR),
        ("authOTPMode", STR),
        ("tradeTransferMode", STR),
        ("marginFlags", STR),
        ("limitPositions", INT),
        ("reportsEmail", STR),
        ("companyDepositPage", STR),
        ("companyWithdrawalPage", STR),
        ("demoInactivityPeriod", INT),
    ],
    "MT5ConGroup (GroupGet/{group}); `commissions` as JSON text",
)

_MT5_SYMBOL_INTS = [
    "currencyBaseDigits",
    "currencyProfitDigits",
    "currencyMarginDigits",
    "color",
    "colorBackground",
    "digits",
    "tickBookDepth",
    "filterSoft",
    "filterSoftTicks",
    "filterHard",
    "filterHardTicks",
    "filterDiscard",
    "filterSpreadMax",
    "filterSpreadMin",
    "spread",
    "spreadBalance",
    "spreadDiff",
    "spreadDiffBalance",
    "stopsLevel",
    "freezeLevel",
    "quotesTimeout",
    "volumeMin",
    "volumeMax",
    "volumeStep",
    "volumeLimit",
    "reTimeout",
    "ieTimeout",
    "ieSlipProfit",
    "ieSlipLosing",
    "ieVolumeMax",
    "spliceTimeDays",
    "filterGap",
    "filterGapTicks",
    "volumeMinExt",
    "volumeMaxExt",
    "volumeStepExt",
    "volumeLimitExt",
    "ieVolumeMaxExt",
    "subscriptionsDelay",
    "swapYearDays",
]
_MT5_SYMBOL_FLOATS = [
    "point",
    "multiply",
    "tickValue",
    "tickSize",
    "contractSize",
    "marginInitial",
    "marginMaintenance",
    "marginLong",
    "marginShort",
    "marginLimit",
    "marginStop",
    "marginStopLimit",
    "swapLong",
    "swapShort",
    "priceSettle",
    "priceLimitMax",
    "priceLimitMin",
    "priceStrike",
    "marginRateLiquidity",
    "faceValue",
    "accruedInterest",
    "marginHedged",
    "marginRateCurrency",
    "swapRateSunday",
    "swapRateMonday",
    "swapRateTuesday",
    "swapRateWednesday",
    "swapRateThursday",
    "swapRateFriday",
    "swapRateSaturday",
]
MT5_SYMBOL_JSON_FIELDS = ("sessionQuote", "sessionTrade", "marginRateInitial", "marginRateMaintenance")
# Wire order of MT5Symbol.d.ts; types by MetaTrader meaning (the SDK types every number as `number`).
_MT5_SYMBOL_ORDER = [
    "symbol",
    "path",
    "isin",
    "description",
    "international",
    "basis",
    "source",
    "page",
    "currencyBase",
    "currencyBaseDigits",
    "currencyProfit",
    "currencyProfitDigits",
    "currencyMargin",
    "currencyMarginDigits",
    "color",
    "colorBackground",
    "digits",
    "point",
    "multiply",
    "tickFlags",
    "tickBookDepth",
    "filterSoft",
    "filterSoftTicks",
    "filterHard",
    "filterHardTicks",
    "filterDiscard",
    "filterSpreadMax",
    "filterSpreadMin",
    "tradeMode",
    "calcMode",
    "execMode",
    "gtcMode",
    "fillFlags",
    "expirFlags",
    "spread",
    "spreadBalance",
    "spreadDiff",
    "spreadDiffBalance",
    "tickValue",
    "tickSize",
    "contractSize",
    "stopsLevel",
    "freezeLevel",
    "quotesTimeout",
    "volumeMin",
    "volumeMax",
    "volumeStep",
    "volumeLimit",
    "marginFlags",
    "marginInitial",
    "marginMaintenance",
    "marginLong",
    "marginShort",
    "marginLimit",
    "marginStop",
    "marginStopLimit",
    "swapMode",
    "swapLong",
    "swapShort",
    "swap3Day",
    "timeStart",
    "timeExpiration",
    "sessionQuote",
    "sessionTrade",
    "reFlags",
    "reTimeout",
    "ieCheckMode",
    "ieTimeout",
    "ieSlipProfit",
    "ieSlipLosing",
    "ieVolumeMax",
    "priceSettle",
    "priceLimitMax",
    "priceLimitMin",
    "tradeFlags",
    "orderFlags",
    "marginRateInitial",
    "marginRateMaintenance",
    "optionsMode",
    "priceStrike",
    "marginRateLiquidity",
    "faceValue",
    "accruedInterest",
    "spliceType",
    "spliceTimeType",
    "spliceTimeDays",
    "marginHedged",
    "marginRateCurrency",
    "filterGap",
    "filterGapTicks",
    "chartMode",
    "ieFlags",
    "volumeMinExt",
    "volumeMaxExt",
    "volumeStepExt",
    "volumeLimitExt",
    "ieVolumeMaxExt",
    "category",
    "exchange",
    "cfi",
    "sector",
    "industry",
    "country",
    "subscriptionsDelay",
    "swapYearDays",
    "swapFlags",
    "swapRateSunday",
    "swapRateMonday",
    "swapRateTuesday",
    "swapRateWednesday",
    "swapRateThursday",
    "swapRateFriday",
    "swapRateSaturday",
]


def _mt5_symbol_type(name: str) -> pa.DataType:
    if name in _MT5_SYMBOL_INTS:
        return INT
    if name in _MT5_SYMBOL_FLOATS:
        return FLOAT
    if name in ("timeStart", "timeExpiration"):
        return TS
    return STR  # text, enum names, and the JSON text of nested structures


MT5_SYMBOL = _entity(
    "mt5_symbols",
    ("symbol",),
    [(name, _mt5_symbol_type(name)) for name in _MT5_SYMBOL_ORDER],
    "MT5Symbol (SymbolGet/{symbol}, for the symbols seen in positions); sessions and margin-rate maps as JSON text",
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
        MT4_DAILY_REPORT,
        MT4_GROUP,
        MT4_TICK,
        MT4_CHART_BAR,
        MT4_USER_CHANGE,
        MT5_GROUP,
        MT5_SYMBOL,
    )
}
"""The REST entities, the generic operator's registry; declared here, complete at import (never mutated: the hub
entities, whose rows carry sampler-filled client columns, are in :mod:`.hub_schemas` and never accepted here)."""
