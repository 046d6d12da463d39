"""Connection parsing and validation: every problem names the connection field."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.connection import Secret, check_service_url, from_connection
from airflow_provider_cplugin.hooks.webapi import CPluginWebApiHook

from .support import API, AUTH, SECRET, TP, conn_dict


def conn(host: str | None = API, login: str | None = "client-1", password: str | None = SECRET, **extra: Any) -> Any:
    return SimpleNamespace(host=host, login=login, password=password, port=None, extra_dejson=extra, conn_id="c1")


def field_of(excinfo: pytest.ExceptionInfo[CPluginConfigError]) -> str:
    return excinfo.value.field


def test_custom_connection_parsed() -> None:
    config = from_connection(
        conn(host=API + "//", env="custom", auth_url=AUTH + "/", trade_platform=TP.upper(), scopes=["webapi", "x"])
    )
    assert config.api_base_url == API
    assert config.auth_url == AUTH
    assert config.trade_platform == TP
    assert config.scopes == ("webapi", "x")
    assert config.timeout == 30.0 and config.max_attempts == 3 and config.verify is True
    assert config.conn_id == "c1"


@pytest.mark.parametrize(
    ("env", "api", "auth"),
    [
        ("prod", "https://cloud.mywebapi.com", "https://auth.cplugin.net"),
        ("staging", "https://pre.mywebapi.com", "https://pre.auth.cplugin.net"),
    ],
)
def test_preset_environments_need_no_host(env: str, api: str, auth: str) -> None:
    config = from_connection(conn(host=None, env=env))
    assert (config.api_base_url, config.auth_url, config.env) == (api, auth, env)


def test_no_env_and_no_host_is_prod_and_preset_host_names_its_env() -> None:
    assert from_connection(conn(host=None)).env == "prod"
    assert from_connection(conn(host="https://pre.mywebapi.com/")).env == "staging"


def test_scopes_string_and_default() -> None:
    assert from_connection(conn(env="custom", auth_url=AUTH)).scopes == ("webapi",)
    assert from_connection(conn(env="custom", auth_url=AUTH, scopes="a b,c")).scopes == ("a", "b", "c")


def test_string_booleans_numbers_and_prefixed_ui_keys(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    config = from_connection(
        conn(
            host="http://127.0.0.1:8080",
            env="custom",
            auth_url="http://localhost:8080",
            extra__cplugin_webapi__allow_insecure_loopback="true",  # the first type name's form prefix
            extra__cplugin__timeout="12.5",
            max_attempts="5",
            verify=str(bundle),
            platform_type="mt5",
        )
    )
    assert config.allow_insecure_loopback is True
    assert (config.timeout, config.max_attempts, config.verify, config.platform_type) == (
        12.5,
        5,
        str(bundle),
        "MT5",
    )


@pytest.mark.parametrize(("word", "expected"), [("off", False), ("No", False), ("on", True), ("yes", True)])
def test_verify_reads_the_same_words_as_other_booleans(word: str, expected: bool) -> None:
    assert from_connection(conn(env="custom", auth_url=AUTH, verify=word)).verify is expected


def test_token_skew_of_each_hook_is_honoured() -> None:
    from airflow_provider_cplugin.hooks.oauth2 import token_cache_for

    config = from_connection(conn(env="custom", auth_url=AUTH))
    assert (token_cache_for(config, 60).skew, token_cache_for(config, 5).skew) == (60, 5)
    assert token_cache_for(config, 5) is token_cache_for(config, 5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"password": None, "env": "custom", "auth_url": AUTH}, "password"),
        ({"password": "", "env": "prod", "host": None}, "password"),
        ({"login": None, "env": "prod", "host": None}, "login"),
        ({"host": None, "env": "custom", "auth_url": AUTH}, "host"),
        ({"env": "custom"}, "extra.auth_url"),
        ({"env": "moon"}, "extra.env"),
        ({"host": "http://api.example.test", "env": "custom", "auth_url": AUTH}, "host"),
        (
            {"host": "http://api.example.test", "env": "custom", "auth_url": AUTH, "allow_insecure_loopback": True},
            "host",
        ),
        ({"host": "http://127.0.0.1:1", "env": "custom", "auth_url": "https://a.test"}, "host"),
        ({"host": "http://127.0.0.2:1", "env": "custom", "auth_url": AUTH, "allow_insecure_loopback": True}, "host"),
        ({"host": "https://u:p@api.example.test", "env": "custom", "auth_url": AUTH}, "host"),
        ({"host": "api.example.test", "env": "custom", "auth_url": AUTH}, "host"),
        ({"env": "custom", "auth_url": "ftp://auth.example.test"}, "extra.auth_url"),
        ({"env": "custom", "auth_url": "http://localhost:1"}, "extra.auth_url"),
        ({"env": "prod"}, "host"),
        ({"env": "prod", "host": None, "auth_url": AUTH}, "extra.auth_url"),
        ({"env": "custom", "auth_url": AUTH, "trade_platform": "not-a-guid"}, "extra.trade_platform"),
        ({"env": "custom", "auth_url": AUTH, "platform_type": "MT6"}, "extra.platform_type"),
        ({"env": "custom", "auth_url": AUTH, "timeout": "0"}, "extra.timeout"),
        ({"env": "custom", "auth_url": AUTH, "timeout": "soon"}, "extra.timeout"),
        ({"env": "custom", "auth_url": AUTH, "max_attempts": 0}, "extra.max_attempts"),
        ({"env": "custom", "auth_url": AUTH, "max_attempts": 2.5}, "extra.max_attempts"),
        ({"env": "custom", "auth_url": AUTH, "scopes": 7}, "extra.scopes"),
        ({"env": "custom", "auth_url": AUTH, "allow_insecure_loopback": "maybe"}, "extra.allow_insecure_loopback"),
        ({"env": "custom", "auth_url": AUTH, "verify": ""}, "extra.verify"),
        ({"env": "custom", "auth_url": AUTH, "verify": "/no/such/ca.pem"}, "extra.verify"),
        ({"env": "custom", "auth_url": AUTH, "verify": 0}, "extra.verify"),
        ({"env": "custom", "auth_url": AUTH, "timeout": True}, "extra.timeout"),
        ({"env": "custom", "auth_url": AUTH, "timeout": 1e12}, "extra.timeout"),
        ({"env": "custom", "auth_url": AUTH, "timeout": "nan"}, "extra.timeout"),
        ({"env": "custom", "auth_url": AUTH, "max_attempts": 11}, "extra.max_attempts"),
        ({"env": "custom", "auth_url": AUTH, "timout": 5}, "extra.timout"),
        ({"host": API + "?x=1", "env": "custom", "auth_url": AUTH}, "host"),
        ({"env": "custom", "auth_url": AUTH + "#f"}, "extra.auth_url"),
        ({"host": "https://a..b", "env": "custom", "auth_url": AUTH}, "host"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    base = {k: kwargs.pop(k) for k in ("host", "login", "password") if k in kwargs}
    with pytest.raises(CPluginConfigError) as excinfo:
        from_connection(conn(**base, **kwargs), "my_conn")
    assert field_of(excinfo) == field
    assert "my_conn" in str(excinfo.value)


def test_credentials_in_url_are_not_echoed() -> None:
    with pytest.raises(CPluginConfigError) as excinfo:
        from_connection(conn(host="https://u:hunter2@api.example.test", env="custom", auth_url=AUTH))
    assert "hunter2" not in str(excinfo.value)


@pytest.mark.parametrize("url", ["http://localhost:9", "http://127.0.0.1:9/x/", "http://[::1]:9"])
def test_loopback_http_allowed_only_with_opt_in(url: str) -> None:
    assert check_service_url(url, True) == url.rstrip("/")
    with pytest.raises(ValueError, match="allow_insecure_loopback"):
        check_service_url(url, False)


def test_secret_not_in_repr() -> None:
    config = from_connection(conn(env="custom", auth_url=AUTH))
    assert SECRET not in repr(config)
    assert SECRET not in str(config.client_secret)
    assert config.client_secret.reveal() == SECRET
    assert Secret("a") == Secret("a")


def test_airflow_connection_from_env_json_and_uri(airflow_conn: Any) -> None:
    airflow_conn("json_conn", conn_dict())
    hook = CPluginWebApiHook("json_conn")
    assert hook.config.api_base_url == API and hook.config.client_secret.reveal() == SECRET
    assert SECRET not in repr(hook)

    uri = Connection(
        conn_id="x",
        conn_type="cplugin",
        host=API,
        login="client-1",
        password=SECRET,
        extra=json.dumps(conn_dict()["extra"]),
    ).get_uri()
    airflow_conn("uri_conn", uri)
    assert CPluginWebApiHook("uri_conn").config.api_base_url == API


def test_missing_password_in_airflow_connection_names_password(airflow_conn: Any) -> None:
    value = conn_dict()
    value.pop("password")
    airflow_conn("nopw", value)
    with pytest.raises(CPluginConfigError) as excinfo:
        _ = CPluginWebApiHook("nopw").config
    assert excinfo.value.field == "password"


def test_http_to_non_loopback_names_host(airflow_conn: Any) -> None:
    value = conn_dict(allow_insecure_loopback=True)
    value["host"] = "http://api.example.test"
    airflow_conn("plain", value)
    with pytest.raises(CPluginConfigError) as excinfo:
        _ = CPluginWebApiHook("plain").config
    assert excinfo.value.field == "host"
    assert "HTTPS" in str(excinfo.value)
