"""Connection spellings the Airflow UI, URIs and older clients produce: each reads as the user meant, or is refused
with an error naming the field (tests of ``hooks/connection.py`` paths the main connection tests leave out)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cplugin.exceptions import CPluginConfigError
from airflow_provider_cplugin.hooks.connection import check_service_url, from_connection

from .support import API, AUTH, SECRET

CUSTOM = {"env": "custom", "auth_url": AUTH}


def raw_conn(extra: Any, host: str | None = API, port: int | None = None) -> Any:
    """A connection object with only the raw ``extra`` text (no ``extra_dejson``), like a bare DB row."""
    return SimpleNamespace(host=host, port=port, login="client-1", password=SECRET, extra=extra, conn_id="raw")


def test_raw_extra_text_is_decoded() -> None:
    """Bug caught: a connection without ``extra_dejson`` read as having no extras (env falls back, the timeout and
    trade platform are silently defaults)."""
    config = from_connection(raw_conn(json.dumps({"env": "custom", "auth_url": AUTH, "timeout": 7})))
    assert (config.auth_url, config.timeout, config.env) == (AUTH, 7.0, "custom")


@pytest.mark.parametrize(
    ("extra", "problem"),
    [("{not json", "is not valid JSON"), ('["env", "custom"]', "must be a JSON object of settings, got a list")],
)
def test_unreadable_raw_extra_names_extra(extra: str, problem: str) -> None:
    """Bug caught: undecodable extras taken as ``{}`` - a typo'd connection silently talks to prod."""
    with pytest.raises(CPluginConfigError) as caught:
        from_connection(raw_conn(extra))
    assert caught.value.field == "extra" and problem in str(caught.value) and "raw" in str(caught.value)


def test_an_empty_form_field_does_not_erase_the_same_setting() -> None:
    """The UI stores form fields as ``extra__cplugin__<name>``; an empty one next to the plain key keeps the value.

    Bug caught: the later empty spelling overwriting the given value (timeout back to the default, the trade
    platform lost).
    """
    extras = {**CUSTOM, "timeout": "9", "extra__cplugin__timeout": "", "extra__cplugin__env": None}
    config = from_connection(SimpleNamespace(host=API, port=None, login="c", password=SECRET, extra_dejson=extras))
    assert (config.timeout, config.env) == (9.0, "custom")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("false", False), (" OFF ", False), ("0", False), ("", False), (0, False), (1, True), ("Yes", True)],
)
def test_loopback_opt_in_reads_boolean_words_and_0_1(value: Any, expected: bool) -> None:
    """Bugs caught: ``"false"`` (any non-empty text) read as true, allowing plain http; an integer 0/1 refused or
    read the wrong way round."""
    extras = {"env": "custom", "auth_url": "http://localhost:9", "allow_insecure_loopback": value}
    conn = SimpleNamespace(host="http://127.0.0.1:9", port=None, login="c", password=SECRET, extra_dejson=extras)
    if expected:
        assert from_connection(conn).allow_insecure_loopback is True
    else:
        with pytest.raises(CPluginConfigError) as caught:
            from_connection(conn)
        assert caught.value.field == "host" and "allow_insecure_loopback" in str(caught.value)


@pytest.mark.parametrize("value", [2, -1, 0.5, [True]])
def test_loopback_opt_in_refuses_other_values(value: Any) -> None:
    """Bug caught: any truthy value (2, a list) taken as consent to send the secret over plain http."""
    extras = {"env": "custom", "auth_url": "http://localhost:9", "allow_insecure_loopback": value}
    conn = SimpleNamespace(host="http://127.0.0.1:9", port=None, login="c", password=SECRET, extra_dejson=extras)
    with pytest.raises(CPluginConfigError) as caught:
        from_connection(conn)
    assert caught.value.field == "extra.allow_insecure_loopback"


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("https://api.example.test/base", 8443, "https://api.example.test:8443/base"),
        ("https://api.example.test:9443", 8443, "https://api.example.test:9443"),  # the URL's own port wins
        ("https://api.example.test", None, "https://api.example.test"),
    ],
)
def test_the_port_field_joins_a_url_host_without_a_port(host: str, port: int | None, expected: str) -> None:
    """Bugs caught: the port field ignored (requests go to 443); the port put after the path; a second port added
    to a URL that has one."""
    conn = SimpleNamespace(host=host, port=port, login="c", password=SECRET, extra_dejson=dict(CUSTOM))
    assert from_connection(conn).api_base_url == expected


@pytest.mark.parametrize("raw", [None, "", "   ", 443, b"https://api.example.test"])
def test_a_service_url_that_is_not_text_is_refused(raw: Any) -> None:
    """Bug caught: a non-string auth URL passed to ``urlsplit`` (a TypeError, not a config error naming it)."""
    with pytest.raises(ValueError, match="must be an absolute URL"):
        check_service_url(raw, False)
    conn = SimpleNamespace(host=API, port=None, login="c", password=SECRET, extra_dejson={"env": "custom"})
    conn.extra_dejson["auth_url"] = raw
    with pytest.raises(CPluginConfigError) as caught:
        from_connection(conn)
    assert caught.value.field == "extra.auth_url"
