"""Building the API clients from settings: the one place secrets are unwrapped for the HTTP layer."""

from datetime import timedelta

from connectors.config import HttpOptions, LinkflowConfig, MatonConfig
from connectors.factory import Clients, build_clients
from connectors.zoho import with_extra_fields
from pipelines.settings import MATON_SOURCES, Settings


def clients_for(settings: Settings, sources: tuple[str, ...], options: HttpOptions | None = None) -> Clients:
    """Clients for the enabled ones among ``sources``; the Maton apps share one rate bucket.

    ``options`` replaces the default retries and timeouts (``check`` gives up sooner than a sync).
    """
    wanted = set(sources) & set(settings.enabled_sources())
    maton = None
    if wanted & set(MATON_SOURCES) and settings.maton_api_key is not None:
        connections = {
            source: connection
            for source in MATON_SOURCES
            if (connection := settings.maton_connection(source)) is not None
        }
        maton = MatonConfig(
            api_key=settings.maton_api_key.get_secret_value(),
            gateway_url=settings.maton_gateway_url,
            connections=connections,
            rate=settings.contact_sync_maton_rps,
        )
    linkflow = None
    if "linkflow" in wanted and settings.linkflow_app_key and settings.linkflow_app_secret:
        linkflow = LinkflowConfig(
            app_key=settings.linkflow_app_key.get_secret_value(),
            app_secret=settings.linkflow_app_secret.get_secret_value(),
            base_url=settings.linkflow_base_url,
            rate=settings.contact_sync_linkflow_rps,
        )
    clients = build_clients(maton, linkflow, options=options)
    _read_mapped_zoho_fields(clients, settings)
    if settings.contact_sync_lookback_minutes is not None:
        lookback = timedelta(minutes=settings.contact_sync_lookback_minutes)
        every = (
            clients.clickfunnels,
            clients.clicksend,
            clients.zoho_crm,
            clients.zoho_bigin,
            clients.linkflow,
        )
        for client in every:
            if client is not None:
                client.lookback = lookback
    return clients


#: The Zoho modules behind each contract object.
_ZOHO_MODULES = {"lead": "Leads", "contact": "Contacts"}


def zoho_module(obj: str) -> str:
    """The Zoho module behind a contract object (``lead`` -> ``Leads``)."""
    return _ZOHO_MODULES[obj]


def _read_mapped_zoho_fields(clients: Clients, settings: Settings) -> None:
    """Zoho clients that also ask for the fields the mappings file reads from them."""
    mappings = settings.mappings()
    if mappings is None:
        return
    for source in ("zoho_crm", "zoho_bigin"):
        client = getattr(clients, source)
        if client is None:
            continue
        extra = {module: mappings.zoho_fields(source, obj) for obj, module in _ZOHO_MODULES.items()}
        client.product = with_extra_fields(client.product, extra)
