"""Plain configuration objects for the clients.

Keys are plain ``str`` here (the pipelines layer unwraps pydantic ``SecretStr``); they are kept out of
every repr so a logged config or a Dagster resource dump shows no secret.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.http import RetryPolicy, Timeouts

DEFAULT_MATON_GATEWAY = "https://api.maton.ai"
"""The base URL Maton documents since 2026-04-30 (maton-ai/api-gateway-skill); the seeds name the older
``https://gateway.maton.ai``."""
DEFAULT_LINKFLOW_URL = "https://open.linkflowtech.com"

MATON_APPS = {
    "clickfunnels": "clickfunnels",
    "clicksend": "clicksend",
    "zoho_crm": "zoho-crm",
    "zoho_bigin": "zoho-bigin",
}
"""Our source name -> the gateway's path segment for that app."""


@dataclass(frozen=True)
class MatonConfig:
    """One Maton key for the four apps it fronts.

    ``rate`` is shared by all four apps: the gateway allows 10 requests per second per account across
    apps, counted in a sliding one-second window where the requests arrive. Pacing at exactly 10/s
    leaves no room for network and scheduling jitter (measured against the emulator: about 7% of
    requests refused with 429 at 10/s, none at 9.5/s or 9.8/s), hence the default.

    ``connections`` maps a source name (``zoho_crm``) to a ``Maton-Connection`` id, for accounts with
    several connections of one app.
    """

    api_key: str = field(repr=False)
    gateway_url: str = DEFAULT_MATON_GATEWAY
    connections: Mapping[str, str] = field(default_factory=dict, repr=False)
    rate: float = 9.5
    burst: float = 1.0


@dataclass(frozen=True)
class LinkflowConfig:
    """A Linkflow private app. No rate limit is documented; 5 requests per second is a polite start."""

    app_key: str = field(repr=False)
    app_secret: str = field(repr=False)
    base_url: str = DEFAULT_LINKFLOW_URL
    rate: float = 5.0
    burst: float = 1.0


@dataclass(frozen=True)
class HttpOptions:
    """Retry and timeout settings shared by every client."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
