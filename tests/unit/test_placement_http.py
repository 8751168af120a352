"""Placement's content negotiation helpers (Accept, error body media type)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from cloudd.services.placement import microversion, util
from cloudd.web.errors import ApiError


def _request(**headers):
    return make_mocked_request("GET", "/", headers=headers)


@pytest.mark.parametrize("accept,offer,q", [
    (None, "application/json", 1.0),
    ("application/json", "application/json", 1.0),
    ("text/html", "application/json", 0.0),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
     "application/json", 0.8),
    ("text/html,application/xhtml+xml,application/xml;q=0.9", "application/json", 0.0),
    ("application/*;q=0.5, application/json;q=0", "application/json", 0.0),
    ("application/*;q=0.5", "application/json", 0.5),
    ("*", "application/json", 1.0),            # malformed: WebOb accepts anything
])
def test_accept_quality(accept, offer, q):
    assert util.accept_quality(accept, offer) == q


@pytest.mark.parametrize("accept,media", [
    (None, "application/json"),
    ("*/*", "application/json"),                # Placement's request log rewrites it
    ("application/json", "application/json"),
    ("text/html", "text/html"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
    ("text/plain", "text/plain"),
    ("application/json;q=0.5, text/html;q=0.4", "application/json"),
])
def test_error_media(accept, media):
    headers = {"Accept": accept} if accept else {}
    assert util.error_media(_request(**headers)) == media


def test_check_accept():
    util.check_accept(_request(Accept="*/*;q=0.8"))
    with pytest.raises(ApiError) as info:
        util.check_accept(_request(Accept="text/plain"))
    assert info.value.status == 406


@pytest.mark.parametrize("header,expected", [
    (None, (1, 0)), ("placement latest", microversion.MAX), ("placement 1.10", (1, 10)),
    ("compute 2.1, placement 1.2", (1, 2)), ("placement 1.01", (1, 1)),
])
def test_parse_header(header, expected):
    headers = {"OpenStack-API-Version": header} if header else {}
    assert microversion.parse_header(_request(**headers)) == expected


@pytest.mark.parametrize("value,status", [
    ("placement 0.5", 406), ("placement 0.9", 406), ("placement 1.99", 406),
    ("placement pony.horse", 400), ("placement 1.2.3", 400),
])
def test_parse_header_errors(value, status):
    with pytest.raises(ApiError) as info:
        microversion.parse_header(_request(**{"OpenStack-API-Version": value}))
    assert info.value.status == status
