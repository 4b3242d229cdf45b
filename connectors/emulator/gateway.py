"""The Maton gateway in front of ClickFunnels, ClickSend and both Zohos: its key check and its errors.

Maton's own failures carry ``{"error": {"message", "code"}}``, which is how a client tells a gateway
refusal from an error the target API passed through.
"""

import hmac

from connectors.emulator.routing import Request, Response, json_response

RATE_LIMIT_MESSAGE = "Rate limited (10 requests/second per account)"


def maton_error(status: int, message: str) -> Response:
    return json_response(status, {"error": {"message": message, "code": status}})


def check_key(request: Request, key: str) -> Response | None:
    """None when ``Authorization: Bearer <key>`` matches; else Maton's 401 (never echoing the key)."""
    header = request.header("authorization")
    if not header:
        return maton_error(401, "Missing Authorization header. Use 'Authorization: Bearer <MATON_API_KEY>'.")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        return maton_error(401, "Invalid or expired API key")
    return None
