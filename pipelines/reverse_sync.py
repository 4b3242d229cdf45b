"""Reverse-sync assets, group ``reverse_sync``: one per writable destination, downstream of canonical."""

import dagster as dg

from pipelines.resources import SyncSettingsResource
from pipelines.streams import STREAMS, Stream


def _build_push_asset(stream: Stream) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey(["reverse_sync", stream.source, stream.object]),
        group_name="reverse_sync",
        deps=[dg.AssetKey(["canonical", "contacts"])],
        pool=f"api_{stream.source}",
        kinds={"python", stream.source},
        description=f"Merged contact fields pushed back to {stream.source} {stream.object} records.",
    )
    def push_stream(
        context: dg.AssetExecutionContext, sync_settings: SyncSettingsResource
    ) -> dg.MaterializeResult:
        settings = sync_settings.settings()
        if settings.push == "off":
            reason = "CONTACT_SYNC_PUSH=off"
        elif stream.source not in settings.enabled_sources():
            reason = f"{stream.source} not enabled"
        else:
            reason = "pushing is not built yet (the reverse-sync issue); nothing was written"
        context.log.info(f"reverse sync {stream.name}: skipped ({reason})")
        return dg.MaterializeResult(metadata={"status": "skipped", "reason": reason})

    return push_stream


reverse_sync_assets: list[dg.AssetsDefinition] = [_build_push_asset(s) for s in STREAMS if s.writable]
