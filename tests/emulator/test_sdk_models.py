"""Every REST endpoint the emulator serves, checked field by field against the vendor's Python SDK (``mywebapi-sdk``,
``cplugin_webapi_sdk``): names, JSON types and nullability of what is served, against the SDK's generated models.

Nothing here is copied from the SDK by hand: the endpoints (method, URL template, response model) are read from the
generated ``api`` modules, the fields (wire name, type, nullability) from the generated attrs models at test time. What
the test writes itself is only how to call each endpoint so it answers with rows (``SAMPLE_CALLS``) and the
commented differences where the SDK is known to be wrong or the reference overrides it (``ALLOWED``).

Hub payloads: the Python SDK declares none (its realtime client hands the raw JSON to callbacks), so there is nothing
to compare them with here; tests/emulator/test_sdk_hub_payloads.py checks them against the TypeScript SDK's
declarations and tests/emulator/test_independent_clients.py against the feeds.
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import pkgutil
import re
import sys
import types
import typing
import uuid
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

import attrs
import pytest
from emulator_support import MT4, MT5, Api, ClientFactory, get_token, make_config

from airflow_provider_cplugin.emulator.app import create_app
from airflow_provider_cplugin.emulator.config import EmulatorConfig
from airflow_provider_cplugin.emulator.data import (
    MT4_GROUPS,
    MT4_LOGIN_BASE,
    MT4_TICKET_BASE,
    MT5_GROUPS,
    MT5_LOGIN_BASE,
    Dataset,
)
from airflow_provider_cplugin.emulator.quirks import ALL_QUIRKS

sdk_api = pytest.importorskip("cplugin_webapi_sdk._generated.api")
sdk_models = importlib.import_module("cplugin_webapi_sdk._generated.models")
Unset = importlib.import_module("cplugin_webapi_sdk._generated.types").Unset

# Known differences, each a (model, wire field) -> why. "missing" = the SDK field is not served; "extra" = served but
# not in the SDK model; anything else is the served JSON type the SDK does not declare.
ALLOWED: dict[tuple[str, str], str] = {
    # The reference (§7, SDK 0.2.1 .d.ts) and the TS SDK type MT5 *Msc fields as strings of epoch milliseconds;
    # the 0.3.3 Python models declare them datetimes. The provider accepts both (parquet/convert.py).
    ("MT5Position", "timeCreateMsc"): "string of epoch ms (reference §7)",
    ("MT5Position", "timeUpdateMsc"): "string of epoch ms (reference §7)",
    ("MT5Order", "timeSetupMsc"): "string of epoch ms (reference §7)",
    ("MT5Order", "timeDoneMsc"): "string of epoch ms (reference §7)",
    ("MT5Deal", "timeMsc"): "string of epoch ms (reference §7)",
}

ALLOWED_SEEN: set[tuple[str, str]] = set()


# --------------------------------------------------------------------------- the SDK, introspected


@dataclass(frozen=True)
class SdkEndpoint:
    method: str
    template: str  # e.g. /api/v2/MT5/{}/SymbolGet/{}
    data_type: Any  # the type of the envelope's ``data`` (the ApiResponse model's field), or the bare body's


@cache
def _hints(cls: type) -> dict[str, Any]:
    # The generated models import each other under TYPE_CHECKING only: resolve against the whole models package.
    return typing.get_type_hints(cls, globalns={**vars(sys.modules[cls.__module__]), **vars(sdk_models)})


class _Anything:
    """Stands for any value in ``to_dict`` (which calls ``.isoformat()``, ``.value``, ``.to_dict()``... on it)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *_, **__: self

    def __iter__(self) -> Any:
        return iter(())


@cache
def model_fields(cls: type) -> dict[str, Any]:
    """Wire name -> type of an attrs model; the wire name is what ``to_dict`` writes for the field."""
    hints = _hints(cls)
    required = {f.name: _Anything() for f in attrs.fields(cls) if f.init and f.default is attrs.NOTHING}
    assert len(required) <= 1, f"{cls.__name__}: several required fields, their wire names cannot be told apart"
    out: dict[str, Any] = {wire: hints[name] for wire, name in zip(cls(**required).to_dict(), required, strict=True)}
    for f in attrs.fields(cls):
        if f.init and f.name not in required:
            # A set field is written under its JSON name, next to the required ones.
            (wire,) = set(cls(**required, **{f.name: _Anything()}).to_dict()) - set(out)
            out[wire] = hints[f.name]
    return out


def _template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path).lower()


@cache
def sdk_endpoints() -> dict[tuple[str, str], SdkEndpoint]:
    out: dict[tuple[str, str], SdkEndpoint] = {}
    for info in pkgutil.walk_packages(sdk_api.__path__, sdk_api.__name__ + "."):
        module = importlib.import_module(info.name)
        if not hasattr(module, "_parse_response"):
            continue
        source = inspect.getsource(module._get_kwargs)
        method = re.search(r'"method": "(\w+)"', source)
        url = re.search(r'"url": "([^"]+)"', source)
        assert method and url, info.name
        returned = inspect.signature(module._parse_response).return_annotation
        (response_model,) = [t for t in typing.get_args(returned) if t is not type(None)]
        hints = _hints(response_model)
        data_type = hints.get("data", response_model)
        key = (method.group(1).upper(), _template(url.group(1)))
        out[key] = SdkEndpoint(key[0], key[1], data_type)
    return out


# --------------------------------------------------------------------------- served JSON vs a type


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def problems(value: Any, tp: Any, where: str, model: str, wire: str) -> list[str]:
    """What in ``value`` does not fit ``tp`` (the SDK's annotation): an empty list when it fits."""
    if (model, wire) in ALLOWED:
        ALLOWED_SEEN.add((model, wire))
        return []
    if _is_union(tp):
        options = [a for a in typing.get_args(tp) if a is not Unset]
        if value is None:
            return [] if type(None) in options else [f"{where}: null, the SDK does not allow null"]
        tried = [problems(value, o, where, model, wire) for o in options if o is not type(None)]
        return [] if any(not p for p in tried) else min(tried, key=len)
    if value is None:
        return [f"{where}: null, the SDK does not allow null"]
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, the SDK says array"]
        (item,) = typing.get_args(tp)
        return [p for n, v in enumerate(value) for p in problems(v, item, f"{where}[{n}]", model, wire)]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, the SDK says object"]
        _, item = typing.get_args(tp)
        return [p for k, v in value.items() for p in problems(v, item, f"{where}.{k}", model, wire)]
    if tp is Any:
        return []
    if isinstance(tp, type) and attrs.has(tp):
        return model_problems(value, tp, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        allowed = {m.value for m in tp}
        return [] if value in allowed else [f"{where}: {value!r} is not a {tp.__name__} ({sorted(allowed)})"]
    checks: dict[Any, Any] = {
        str: lambda v: isinstance(v, str),
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        dt.datetime: lambda v: isinstance(v, str) and _parses(dt.datetime.fromisoformat, v),
        dt.date: lambda v: isinstance(v, str) and _parses(dt.date.fromisoformat, v),
        uuid.UUID: lambda v: isinstance(v, str) and _parses(uuid.UUID, v),
    }
    if tp not in checks:
        return [f"{where}: the test does not know the SDK type {tp!r}"]
    return [] if checks[tp](value) else [f"{where}: {value!r} is not a {getattr(tp, '__name__', tp)}"]


def _parses(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True


def model_problems(value: Any, cls: type, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: {type(value).__name__}, the SDK says {cls.__name__} object"]
    hints = _hints(cls)
    fields = model_fields(cls)
    if not fields and "additional_properties" in hints:  # a map (e.g. MT5ConGroup.commissions): name -> model
        return problems(value, hints["additional_properties"], where, cls.__name__, "*")
    name = cls.__name__
    out = [f"{where}: {k} is served but not in {name}" for k in value if k not in fields and (name, k) not in ALLOWED]
    out += [f"{where}: {name}.{k} is not served" for k in fields if k not in value and (name, k) not in ALLOWED]
    for wire, tp in fields.items():
        if wire in value:
            out += problems(value[wire], tp, f"{where}.{wire}", name, wire)
    return out


# --------------------------------------------------------------------------- calling every served endpoint

DS_USERS = 200
LOGIN4 = MT4_LOGIN_BASE + 7
LOGIN5 = MT5_LOGIN_BASE + 3
FROM, TO = "2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z"

# How to call each route so it answers with data: path values in order, query parameters, and a call before it.
SAMPLE_CALLS: dict[str, dict[str, Any]] = {
    "UserRecordRequest/{login}": {"path": [LOGIN4]},
    "UserRecordGet/{login}": {"path": [LOGIN4]},
    "UserRecordsRequest": {"query": {"logins": f"{LOGIN4},{LOGIN4 + 1}"}},
    "TradesRequest": {"query": {"limit": 5}},
    "TradesGetByLogin/{login}/{group}": {"path": ["<owner>", "<owner-group>"]},
    "TradeRecordsRequest": {"query": {"orders": f"{MT4_TICKET_BASE},{MT4_TICKET_BASE + 1}"}},
    "TradesUserHistory/{login}": {"path": [LOGIN4]},
    "ReportsRequest": {"query": {"from": FROM, "to": TO, "logins": ",".join(str(LOGIN4 + i) for i in range(40))}},
    "MarginLevelGet/{login}": {"path": ["<owner>"]},
    "TickInfoLast/{symbol}": {"path": ["EURUSD"]},
    "CfgRequestSymbol/{symbol}": {"path": ["EURUSD"]},
    "GroupRecordGet/{group}": {"path": [MT4_GROUPS[0].name]},
    "DailyReportsRequest": {"query": {"from": FROM, "to": TO, "logins": LOGIN4}},
    "DailyReportsRequestEx": {"query": {"from": FROM, "to": TO, "logins": LOGIN4}},
    "DailySyncStart": {"query": {"timestamp": 0}},
    "DailySyncRead": {"before": ("POST", "DailySyncStart", {"timestamp": 0})},
    "TicksRequest/{symbol}": {"path": ["EURUSD"], "query": {"start": "2025-12-31T00:00:00Z", "end": TO}},
    "ChartRequest/{symbol}": {"path": ["EURUSD"], "query": {"period": "H1", "start": FROM, "end": TO}},
    "TradesSyncStart": {"query": {"timestamp": 0}},
    "TradesSyncRead": {"before": ("POST", "TradesSyncStart", {"timestamp": 0}), "query": {"limit": 10}},
    "UsersSyncStart": {"query": {"timestamp": 0}},
    "UsersSyncRead": {"before": ("POST", "UsersSyncStart", {"timestamp": 0}), "query": {"limit": 10}},
    "TradesSnapshot": {"query": {"limit": 10}},
    "UsersSnapshot": {"query": {"limit": 10}},
    "UserGet/{login}": {"path": [LOGIN5]},
    "SymbolGet/{symbol}": {"path": ["XAUUSD"]},
    "GroupGet/{group}": {"path": [MT5_GROUPS[0].name]},
    "PositionByGroup/{mask}": {"path": ["*"], "query": {"limit": 20}},
    "OrderByGroup/{mask}": {"path": ["*"], "query": {"limit": 20}},
    "DealByGroup/{mask}": {"path": ["*"], "query": {"limit": 20}},
}


def served_routes() -> list[tuple[str, str]]:
    app = create_app(make_sdk_config())
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        # /api/TradePlatforms (bare JSON, account level) is not in the Python SDK's generated API: v2 only.
        if r.resource is not None and r.resource.canonical.startswith("/api/v2/") and r.method in ("GET", "POST")
    }
    return sorted(routes, key=lambda r: (r[1], r[0]))


def make_sdk_config(quirks: tuple[str, ...] = ()) -> EmulatorConfig:
    return make_config(mt4_users=DS_USERS, mt5_users=DS_USERS, quirks=quirks)


def _sample(canonical: str) -> dict[str, Any]:
    suffix = canonical.split("{tradePlatform}/", 1)[-1]
    return SAMPLE_CALLS.get(suffix, SAMPLE_CALLS.get(canonical, {}))


def _url(canonical: str, values: list[Any]) -> str:
    platform = MT5 if "/MT5/" in canonical else MT4
    path = canonical.replace("{tradePlatform}", platform)
    for value in values:
        path = re.sub(r"\{[^}]*\}", str(value).replace("\\", "%5C"), path, count=1)
    return path


def test_every_served_route_is_an_sdk_endpoint() -> None:
    sdk = sdk_endpoints()
    assert len(sdk) > 100, "the SDK's generated api modules were not found"
    unknown = [f"{m} {p}" for m, p in served_routes() if (m, _template(p)) not in sdk]
    assert unknown == []


@pytest.mark.parametrize("quirks", [(), ALL_QUIRKS], ids=["default", "all-quirks"])
async def test_served_payloads_match_the_sdk_models(make_client: ClientFactory, quirks: tuple[str, ...]) -> None:
    client = await make_client(mt4_users=DS_USERS, mt5_users=DS_USERS, quirks=quirks)
    api = Api(client, await get_token(client))
    ds = Dataset(make_sdk_config(quirks))
    owner = ds.mt4_open_trade(0)["login"]
    owner_group = ds.mt4_user_group(owner - MT4_LOGIN_BASE).name
    sdk = sdk_endpoints()
    found: list[str] = []
    ALLOWED_SEEN.clear()
    for method, canonical in served_routes():
        sample = _sample(canonical)
        values = [{"<owner>": owner, "<owner-group>": owner_group}.get(v, v) for v in sample.get("path", [])]
        if "before" in sample:
            before_method, before_path, before_query = sample["before"]
            before_url = _url(canonical.rsplit("/", 1)[0] + "/" + before_path, [])
            await api.call(before_method, before_url, params=before_query)
        url = _url(canonical, values)
        assert "{" not in url, f"no SAMPLE_CALLS entry for {canonical}"
        resp = await api.raw(method, url, params=sample.get("query", {}))
        assert resp.status == 200, (url, resp.status, await resp.text())
        body = await resp.json()
        assert body["error"] is None, (url, body["error"])
        data = body["data"]
        assert data not in (None, [], {}), f"{url} answered no data: the check would prove nothing"
        endpoint = sdk[(method, _template(canonical))]
        found += problems(data, endpoint.data_type, f"{method} {canonical.split('}/')[-1]}", "", "")
    assert found == []
    assert set(ALLOWED) == ALLOWED_SEEN, "an allow-list entry no served field needs any more: remove it"
