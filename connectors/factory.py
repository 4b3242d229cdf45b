"""Builds the five clients from configuration, wiring the shared pieces once.

The four Maton apps get one ``httpx.Client`` each but share a single token bucket (the gateway's
10 requests per second count across apps) and one ``RequestStats``; Linkflow gets its own bucket and
its token auth. A source whose configuration is missing is simply ``None``.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

import httpx

from connectors.clickfunnels import ClickFunnelsClient
from connectors.clicksend import ClickSendClient
from connectors.config import MATON_APPS, HttpOptions, LinkflowConfig, MatonConfig
from connectors.http import HttpClient, StaticAuth
from connectors.linkflow import LinkflowClient, LinkflowToken
from connectors.ratelimit import TokenBucket
from connectors.stats import RequestStats
from connectors.times import utc_now
from connectors.zoho import BIGIN, CRM, ZohoClient


def maton_http(
    config: MatonConfig,
    source: str,
    *,
    limiter: TokenBucket,
    stats: RequestStats,
    options: HttpOptions | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
) -> HttpClient:
    """The HTTP session of one Maton app: ``{gateway}/{app}``, bearer key, optional connection id."""
    headers = {"Authorization": f"Bearer {config.api_key}"}
    connection = config.connections.get(source)
    if connection:
        headers["Maton-Connection"] = connection
    opts = options or HttpOptions()
    return HttpClient(
        source,
        f"{config.gateway_url.rstrip('/')}/{MATON_APPS[source]}",
        auth=StaticAuth(headers),
        limiter=limiter,
        stats=stats,
        retry=opts.retry,
        timeouts=opts.timeouts,
        transport=transport,
        sleep=sleep,
    )


def linkflow_http(
    config: LinkflowConfig,
    *,
    limiter: TokenBucket | None = None,
    stats: RequestStats,
    options: HttpOptions | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
    now: Callable[[], datetime] = utc_now,
) -> HttpClient:
    """Linkflow's HTTP session, with its token auth bound to it (the token is fetched through it)."""
    token = LinkflowToken(config.app_key, config.app_secret, now=now)
    opts = options or HttpOptions()
    http = HttpClient(
        "linkflow",
        config.base_url,
        auth=token,
        limiter=limiter or TokenBucket(config.rate, config.burst),
        stats=stats,
        retry=opts.retry,
        timeouts=opts.timeouts,
        transport=transport,
        sleep=sleep,
    )
    token.bind(http)
    return http


@dataclass
class Clients:
    """The enabled clients (``None`` where not configured) and the counters they share."""

    stats: RequestStats = field(default_factory=RequestStats)
    clickfunnels: ClickFunnelsClient | None = None
    clicksend: ClickSendClient | None = None
    zoho_crm: ZohoClient | None = None
    zoho_bigin: ZohoClient | None = None
    linkflow: LinkflowClient | None = None
    maton_limiter: TokenBucket | None = None

    def close(self) -> None:
        for client in (self.clickfunnels, self.clicksend, self.zoho_crm, self.zoho_bigin, self.linkflow):
            if client is not None:
                client.http.close()

    def __enter__(self) -> "Clients":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def build_clients(
    maton: MatonConfig | None = None,
    linkflow: LinkflowConfig | None = None,
    *,
    options: HttpOptions | None = None,
    stats: RequestStats | None = None,
    clickfunnels_workspace_ids: Sequence[str | int] = (),
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
    now: Callable[[], datetime] = utc_now,
) -> Clients:
    """Every client whose configuration is given; close them with ``Clients.close()`` (or ``with``).

    ``now`` is the clock of the time windows and the token expiry; tests and cassettes fix it.
    """
    clients = Clients(stats=stats or RequestStats())
    if maton is not None:
        limiter = TokenBucket(maton.rate, maton.burst)
        clients.maton_limiter = limiter

        def app(source: str) -> HttpClient:
            return maton_http(
                maton,
                source,
                limiter=limiter,
                stats=clients.stats,
                options=options,
                transport=transport,
                sleep=sleep,
            )

        clients.clickfunnels = ClickFunnelsClient(
            app("clickfunnels"), workspace_ids=clickfunnels_workspace_ids
        )
        clients.clicksend = ClickSendClient(app("clicksend"), now=now)
        clients.zoho_crm = ZohoClient(app("zoho_crm"), CRM, now=now)
        clients.zoho_bigin = ZohoClient(app("zoho_bigin"), BIGIN, now=now)
    if linkflow is not None:
        http = linkflow_http(
            linkflow, stats=clients.stats, options=options, transport=transport, sleep=sleep, now=now
        )
        clients.linkflow = LinkflowClient(http, now=now)
    return clients
