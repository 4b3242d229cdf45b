"""Building the API clients from settings: the one place secrets are unwrapped for the HTTP layer."""

from connectors.config import HttpOptions, LinkflowConfig, MatonConfig
from connectors.factory import Clients, build_clients
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
    return build_clients(maton, linkflow, options=options)
