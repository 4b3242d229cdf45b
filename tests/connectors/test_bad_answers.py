"""How the HTTP layer words an answer that is not the JSON it expected: short, one line, the content
type and what was wrong, and never a secret, even one that straddles where the text is cut."""

import httpx
import pytest

from connectors.errors import FatalError
from connectors.http import HttpClient, StaticAuth, body_summary, decode_json, describe_error

SECRET = "s3cr3t-maton-key-value"


def answer(body: bytes, content_type: str | None = "application/json", status: int = 200) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return httpx.Response(status, headers=headers, content=body)


@pytest.mark.parametrize(
    ("body", "content_type", "said"),
    [
        (b"Service restarting", "application/json", "application/json body: 'Service restarting'"),
        (b'{"data": [{"id": "1", "Email": "ann@exa', "application/json", "JSON cut short after 39 bytes"),
        (b'[{"id": 1}, {"id"', "application/json", "JSON cut short after 17 bytes"),
        (b"", "application/json", "empty application/json body"),
        (
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>502</h1>nginx</body></html>",
            "text/html; charset=utf-8",
            "text/html page: 502 Bad Gateway",
        ),
        (
            b"<!DOCTYPE html><body><script>var x = '<b>';</script><h1>Sign&nbsp;in</h1><p>to continue</p>",
            None,
            "no content type page: Sign in to continue",
        ),
        (
            b'<?xml version="1.0"?><response><error><code>4834</code><message>Invalid Ticket Id</message>'
            b"</error></response>",
            "application/xml",
            "application/xml body: 4834 Invalid Ticket Id",
        ),
    ],
)
def test_an_answer_that_is_not_json_is_named_for_what_it_is(
    body: bytes, content_type: str | None, said: str
) -> None:
    with pytest.raises(FatalError) as info:
        decode_json(answer(body, content_type), "zoho_crm", "GET", "/crm/v8/Leads")
    assert str(info.value) == f"zoho_crm GET /crm/v8/Leads -> 200 INVALID_JSON: {said}"


def test_a_cut_short_answer_is_not_quoted() -> None:
    """Its text is records, so personal data; the line says how long it was instead."""
    with pytest.raises(FatalError) as info:
        decode_json(answer(b'{"data": [{"Email": "ann@example.org", "Phone": "+1415'), "x", "GET", "/p")
    assert "ann@example.org" not in str(info.value)


def test_a_long_page_is_cut_to_one_short_line() -> None:
    page = b"<html><body><p>" + b"word " * 2000 + b"</p></body></html>"
    summary = body_summary(answer(page, "text/html"))
    assert summary.startswith("text/html page: word word")
    assert summary.endswith("...")
    assert len(summary) < 200


def test_a_secret_in_a_bad_answer_is_redacted_before_it_is_cut() -> None:
    http = HttpClient(
        "clicksend", "http://127.0.0.1:9", auth=StaticAuth({"Authorization": f"Bearer {SECRET}"})
    )
    # The key starts just before the summary's cut, so cutting first would leave its first half.
    page = b"<p>" + b"x" * 150 + b" " + SECRET.encode() + b"</p>"
    try:
        for response in (
            answer(page, "text/html", status=200),
            answer(
                b'{"error": {"code": "UPSTREAM_ERROR", "message": "refused Bearer ' + SECRET.encode() + b'"}}'
            ),
        ):
            lines = [
                describe_error(response, http.redact)[1],
                str(http.unexpected(response, "GET", "/v3/lists", "x")),
            ]
            with pytest.raises(FatalError) as info:
                http.decode(answer(page, "text/html"), "GET", "/v3/lists")
            lines.append(str(info.value))
            for line in lines:
                assert SECRET not in line
                assert SECRET[:6] not in line  # what cutting first would have left
    finally:
        http.close()


def test_an_error_envelope_in_a_200_speaks_in_the_apis_words() -> None:
    response = answer(
        b'{"http_code": 200, "response_code": "INVALID_REQUEST", "response_msg": "No list", "data": []}'
    )
    assert describe_error(response) == ("INVALID_REQUEST", "No list")
