from __future__ import annotations

import email.utils
import gc
import sys

import httpx
import pytest

from vupsert.config import Endpoint, Secret
from vupsert.config._endpoint import check_token, check_url, is_loopback, shown_url
from vupsert.errors import ConfigError, ServerError
from vupsert.transport import Client, Kind
from vupsert.transport._answers import retry_after_seconds

TOKEN = Secret("s3cr3t-token")


def client_for(handler: httpx.MockTransport | None = None, **kw: object) -> Client:
    return Client(Endpoint("http://127.0.0.1:1", TOKEN), transport=handler, **kw)  # type: ignore[arg-type]


def answering(status: int, body: bytes | str, headers: dict[str, str] | None = None) -> Client:
    content = body.encode() if isinstance(body, str) else body

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers=headers)

    return client_for(httpx.MockTransport(handler))


def test_request_shape_and_namespace_is_percent_encoded() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": "Success"})

    client = Client(
        Endpoint("http://127.0.0.1:1/", TOKEN),
        namespace="a b/c",
        transport=httpx.MockTransport(handler),
    )
    answer = client.upsert(b'[{"id":"1","data":"x"}]')
    assert answer.kind is Kind.OK
    (request,) = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/upsert-data/a%20b%2Fc"
    assert request.headers["authorization"] == "Bearer s3cr3t-token"
    assert request.content == b'[{"id":"1","data":"x"}]'


def test_both_routes_send_the_same_request() -> None:
    # Without proxy variables an upsert goes straight to the transport; with them, through
    # httpx's client. The server must not be able to tell.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": "Success"})

    for proxied in (False, True):
        client = Client(
            Endpoint("http://127.0.0.1:1/", TOKEN),
            namespace="ns",
            timeout=7.0,
            transport=httpx.MockTransport(handler),
            proxied=proxied,
        )
        assert client.upsert(b'[{"id":"1","data":"x"}]').kind is Kind.OK
    direct, routed = seen
    assert (direct.method, direct.url, direct.content) == (
        routed.method,
        routed.url,
        routed.content,
    )
    assert sorted(direct.headers.multi_items()) == sorted(routed.headers.multi_items())
    assert direct.extensions["timeout"] == routed.extensions["timeout"]
    assert direct.extensions["timeout"]["read"] == 7.0


def test_proxy_variables_send_upserts_through_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert not Client(Endpoint("http://127.0.0.1:1", TOKEN)).proxied
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert Client(Endpoint("https://index.example", TOKEN)).proxied


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, '{"result":"Success"}', Kind.OK),
        (200, "<html>login</html>", Kind.TRANSIENT),
        (400, '{"error":"bad id","status":400}', Kind.REFUSED),
        (413, "too large", Kind.REFUSED),
        (401, '{"error":"Unauthorized","status":401}', Kind.FATAL),
        (403, "Forbidden: /upsert-data is not allowed", Kind.FATAL),
        (404, "", Kind.FATAL),
        (405, "", Kind.FATAL),
        (422, '{"error":"Embedding data for this index is not allowed.","status":422}', Kind.FATAL),
        (429, '{"error":"ERR max requests limit exceeded"}', Kind.TRANSIENT),
        (500, "oops", Kind.TRANSIENT),
        (502, "<html><body><h1>502 Bad Gateway</h1></body></html>", Kind.TRANSIENT),
        (503, "", Kind.TRANSIENT),
        (504, "", Kind.TRANSIENT),
    ],
)
def test_status_to_kind(status: int, body: str, kind: Kind) -> None:
    answer = answering(status, body).upsert(b"[]")
    assert answer.kind is kind
    assert answer.status == status
    assert answer.message  # never empty, even for an empty body
    assert "<" not in answer.message


def test_non_json_error_body_is_readable() -> None:
    answer = answering(
        502, "<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>"
    ).upsert(b"[]")
    assert answer.message == "502 Bad Gateway nginx"


def test_retry_after_seconds_and_http_date() -> None:
    answer = answering(429, "{}", {"Retry-After": "7"}).upsert(b"[]")
    assert answer.retry_after == 7.0
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_seconds(when, now=1_000_000) == pytest.approx(30, abs=1)
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_connection_errors_and_timeouts_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    assert client_for(httpx.MockTransport(refuse)).upsert(b"[]").kind is Kind.TRANSIENT
    answer = client_for(httpx.MockTransport(slow)).upsert(b"[]")
    assert answer.kind is Kind.TRANSIENT and answer.status is None


def test_info_errors_are_server_errors_with_hints() -> None:
    with pytest.raises(ServerError) as caught:
        answering(401, '{"error":"Unauthorized","status":401}').info()
    assert caught.value.status == 401
    assert "token" in str(caught.value)
    with pytest.raises(ServerError):
        answering(200, "not json").info()
    assert answering(200, '{"result":{"dimension":3}}').info() == {"dimension": 3}


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://x.upstash.io", True),
        ("http://127.0.0.1:8787", True),
        ("http://localhost:8787/", True),
        ("http://[::1]:8787", True),
        ("http://example.com", False),
        ("http://10.0.0.1", False),
        ("ftp://x", False),
        ("nonsense", False),
        ("https://x.upstash.io:abc", False),
        ("https://x.upstash.io:99999", False),
        ("https://x.upstash.io:443:1", False),
        ("http://127.0.0.1:1\\x", False),
        ("http://127.0.0.1:1?", False),
        ("https://x.upstash.io/#", False),
    ],
)
def test_check_url(url: str, ok: bool) -> None:
    if ok:
        assert not check_url(url, allow_insecure_http=False).endswith("/")
    else:
        with pytest.raises(ConfigError):
            check_url(url, allow_insecure_http=False)


def test_a_host_http_cannot_use_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Client(Endpoint("https://exa\xadmple.com", TOKEN))


def test_insecure_http_allowed_on_request() -> None:
    assert check_url("http://example.com", allow_insecure_http=True) == "http://example.com"
    assert is_loopback("127.8.9.10") and not is_loopback("example.com")


def test_token_does_not_show_in_reprs() -> None:
    client = client_for()
    assert "s3cr3t" not in repr(TOKEN) and "s3cr3t" not in str(TOKEN)
    assert "s3cr3t" not in repr(client.__dict__)


def test_an_endpoint_shows_neither_its_token_nor_its_path() -> None:
    # Behind a proxy the path may carry a key of its own: a repr shows scheme and host.
    endpoint = Endpoint("https://proxy.example/k3y-in-path/", TOKEN)
    assert endpoint.url == "https://proxy.example/k3y-in-path"
    assert repr(endpoint) == "Endpoint('https://proxy.example', Secret('********'))"
    with pytest.raises(ConfigError, match="No token"):
        Endpoint("https://index.example", Secret(" \n"))


@pytest.mark.parametrize("proxied", [False, True], ids=["transport", "client"])
@pytest.mark.parametrize("status", [200, 400, 503])
def test_a_sent_body_is_freed_without_the_cyclic_collector(status: int, proxied: bool) -> None:
    # httpx 0.28 leaves each response in a reference cycle with its stream; the body a
    # request holds must not wait for the collector, or memory grows with the run.
    content = b'{"result": "Success"}' if status == 200 else b"{}"
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=content))
    client = Client(Endpoint("http://127.0.0.1:1", TOKEN), transport=transport, proxied=proxied)
    body = b'[{"id": "a", "data": "text"}]' + b" " * 1000
    before = sys.getrefcount(body)
    collecting = gc.isenabled()
    gc.disable()
    try:
        client.upsert(body)
        assert sys.getrefcount(body) == before
    finally:
        if collecting:
            gc.enable()


@pytest.mark.parametrize(
    "url",
    [
        "https://x.upstash.io/upsert-data",
        "https://x.upstash.io/upsert-data/docs",
        "https://x.upstash.io/info/",
        "https://x.upstash.io/?token=abc",
    ],
)
def test_an_endpoint_url_asks_for_the_base_url(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_url(url, allow_insecure_http=False)
    assert "https://x.upstash.io" in str(caught.value) and "base URL" in str(caught.value)


def test_a_path_that_is_no_endpoint_is_kept_for_a_proxy() -> None:
    assert check_url("https://proxy.example/vector/", allow_insecure_http=False) == (
        "https://proxy.example/vector"
    )


@pytest.mark.parametrize(
    "url", ["http://user:PASSWD@127.0.0.1:1", "https://PASSWD@x.upstash.io", "ftp://u:PASSWD@x"]
)
def test_a_url_with_a_password_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_url(url, allow_insecure_http=True)
    assert "PASSWD" not in str(caught.value) and "***@" in str(caught.value)


def test_a_token_given_as_the_url_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        check_url("AbCdEfSeCrEt0123456789=", allow_insecure_http=False)
    assert "SeCrEt" not in str(caught.value)


def test_shown_url_is_the_scheme_and_host() -> None:
    assert shown_url("https://a:b@h:1/p?q#f") == "https://***@h:1"
    assert shown_url("https://a:b/c?d#e@h:1/p") == "https://***@h:1"
    assert shown_url("https://a:b@") == "https://***@***"
    assert shown_url("https://h/p?token=t") == "https://h"
    assert shown_url("h/p") == shown_url("https:///p") == ""


def test_a_token_is_stripped_of_surrounding_whitespace() -> None:
    assert check_token(Secret("  tok-123\r\n")).reveal() == "tok-123"


@pytest.mark.parametrize(
    "bad", ["CANARY 123", "CANARY\t123", "CANARY\x00123", "CANARY\x7f", "CANARYö"]
)
def test_a_token_with_inner_whitespace_or_control_characters_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_token(Secret(bad))
    assert "CANARY" not in str(caught.value)
    assert "position" in str(caught.value)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_fatal_and_names_its_location(status: int) -> None:
    location = "https://u:PASSWD@elsewhere.example/p?token=QUERY"
    answer = answering(status, "", {"Location": location}).upsert(b"[]")
    assert answer.kind is Kind.FATAL
    assert "https://***@elsewhere.example " in answer.message
    assert "PASSWD" not in answer.message and "QUERY" not in answer.message
    with pytest.raises(ServerError) as caught:
        answering(status, "", {"Location": "https://elsewhere.example/"}).info()
    assert "https://elsewhere.example" in str(caught.value)
    assert "does not follow redirects" in str(caught.value)


def test_info_on_a_url_with_a_path_says_to_use_the_base_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "Invalid JSON body"})

    client = Client(
        Endpoint("http://127.0.0.1:1/vector", TOKEN), transport=httpx.MockTransport(handler)
    )
    with pytest.raises(ServerError) as caught:
        client.info()
    assert "base URL" in str(caught.value) and "(/vector)" in str(caught.value)


def test_a_server_that_echoes_the_token_does_not_get_it_printed() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=f"bad header {request.headers['authorization']}")

    client = client_for(httpx.MockTransport(echo))
    answer = client.upsert(b"[]")
    assert "s3cr3t" not in answer.message and "***" in answer.message
    with pytest.raises(ServerError) as caught:
        client.info()
    assert "s3cr3t" not in str(caught.value)
