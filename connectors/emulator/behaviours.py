"""Switches for what the vendors leave open: one setting per plausible behaviour.

Where a vendor's documentation is silent or contradicts itself, the product must be right whichever
way the real API behaves. Each switch here plays one of those ways, so a test can run a stream end to
end under every setting and compare the warehouses. Defaults are the emulator's behaviour before the
switches existed, or, where the vendor is clear, what the vendor documents. The README beside this
module lists each switch with the vendor text or the reason behind each choice.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args, get_origin

from connectors.emulator.timefmt import zone_named

EventsOrder = Literal["ascending", "descending", "newest_tail"]
BiginDeleted = Literal["missing_404", "record_id_400", "empty_204", "feed"]
ZohoConflict = Literal["per_record", "whole_call"]
Boundary = Literal["inclusive", "exclusive"]
ClickFunnelsAfter = Literal["keyset", "id_filter"]
InboundTime = Literal["timestamp", "timestamp_send", "both"]
HistoryShape = Literal["envelope", "bare_array"]
PropsUpdate = Literal["merge", "replace"]
UpsertSeveral = Literal["refuse", "update_oldest", "update_newest"]
CreateLayout = Literal["standard", "partner"]
IdentifyShared = Literal["new_contact", "merge"]


@dataclass(frozen=True)
class Behaviours:
    """One value per open question; see ``connectors/emulator/README.md`` for each one's source."""

    # Zoho CRM and Bigin
    zoho_conflict: ZohoConflict = "per_record"
    """A write refused by ``If-Unmodified-Since``: one ``ALREADY_MODIFIED`` element per refused record
    in ``data[]`` (others applied), or the whole call answered 412 with nothing written."""
    zoho_if_modified_since: Boundary = "inclusive"
    """Whether ``If-Modified-Since`` keeps records modified exactly at the given second."""
    zoho_token_chain_limit: int = 100_000
    """Records one ``page_token`` chain may serve before ``PAGINATION_LIMIT_EXCEEDED``."""
    zoho_recycle_retention_days: int = 60
    zoho_permanent_retention_days: int = 120
    """How long ``/deleted`` keeps recycle-bin and permanent deletions."""
    bigin_honours_if_modified_since: bool = False
    bigin_deleted: BiginDeleted = "missing_404"
    """What Bigin answers on ``/{module}/deleted``: 404, 400 (``deleted`` read as a record id), 204,
    or a feed like CRM's."""
    bigin_unapproved_share: float = 0.0
    """Share of Bigin contacts awaiting approval, hidden unless ``approved=false|both``."""
    zoho_upsert_several: UpsertSeveral = "refuse"
    """An upsert whose duplicate-check value several records hold: refused with ``DUPLICATE_DATA``,
    or applied to the oldest of them or to the one modified last (Zoho does not say which)."""
    zoho_layout_required: tuple[str, ...] = ()
    """Fields an admin made mandatory in a module's layout, as ``Module.Field`` (``Leads.Company``, which
    api-notes §5.5 says may be so): ``/settings/layouts`` marks them ``required`` and an insert without
    them is refused with ``MANDATORY_NOT_FOUND``, as one without ``Last_Name`` always is."""
    zoho_partner_layout_required: tuple[str, ...] = ()
    """``Module.Field`` names a second active layout of the module ("Partner") requires on top of the
    first's; with none, a module has the one layout."""
    zoho_api_create_layout: CreateLayout = "standard"
    """Which layout an API insert lands in, and whose mandatory fields it must carry, when a module
    has two (Zoho does not say)."""
    zoho_layouts_readable: bool = True
    """Whether ``/settings/layouts`` answers; a connection without the settings scope is refused
    (401 ``OAUTH_SCOPE_MISMATCH``)."""

    # Linkflow
    linkflow_events_order: EventsOrder = "ascending"
    """``/events/lite``: the ``size`` oldest events above ``lastMaxId`` ascending, the same listed
    newest first, or the ``size`` newest events above ``lastMaxId`` newest first (a tail)."""
    linkflow_bulk_omission_rate: float = 0.0
    """Share of ``/v2/contacts_bulk`` answers that leave out one existing id (transiently)."""
    linkflow_zone: str = "Asia/Shanghai"
    """IANA zone of the API's zone-less times (records, window bounds, token ``expiration``)."""
    linkflow_identify_shared: IdentifyShared = "new_contact"
    """``POST /identifiers`` for a new ``externalId`` carrying an email or mobile another contact
    holds: a new contact, or the identity joins that contact and the fields sent update it."""
    linkflow_props: PropsUpdate = "merge"
    """``PUT /v2/contacts/{id}`` with ``props``: the keys sent change and the others stay, or the
    object sent replaces the contact's whole ``props``."""

    # ClickFunnels
    clickfunnels_after: ClickFunnelsAfter = "keyset"
    """With ``sort_property=updated_at``: ``after`` continues the sort order, or filters ``id > after``."""
    clickfunnels_repeat_workspace: bool = False
    """The workspaces list repeats a workspace, as the vendor's own example does."""

    # ClickSend
    clicksend_inbound_time: InboundTime = "timestamp"
    """Which time key inbound SMS items carry (the vendor's example has only ``timestamp_send``)."""
    clicksend_inbound_poll: bool = True
    clicksend_receipts_poll: bool = True
    """Whether the account has a POLL rule for inbound messages / delivery receipts; without one the
    lists answer empty."""
    clicksend_poll_rules: int = 1
    """Number of POLL rules; with more than one, a message can come back more than once."""
    clicksend_history_shape: HistoryShape = "envelope"
    """``/sms/history``: the paginated envelope of the schema, or a bare array as the vendor's example."""
    clicksend_history_inbound: bool = False
    """Whether ``/sms/history`` also lists the inbound messages (``direction: in``, status
    ``Received``, the ``message_id`` ``/sms/inbound`` gives them)."""

    def __post_init__(self) -> None:
        # JSON (the admin endpoint) gives a list, and `sandbox --behaviour` text names separated by
        # commas; the dataclass is frozen and hashable with a tuple.
        for name in ("zoho_layout_required", "zoho_partner_layout_required"):
            given = getattr(self, name)
            names = tuple(n.strip() for n in (given.split(",") if isinstance(given, str) else given))
            object.__setattr__(self, name, tuple(n for n in names if n))
            bad = [field for field in getattr(self, name) if field.count(".") != 1]
            if bad:
                raise ValueError(f"behaviour {name} takes Module.Field names; got {bad}")
        for item in fields(self):
            value = getattr(self, item.name)
            choices = get_args(item.type) if get_origin(item.type) is Literal else ()
            if choices and value not in choices:
                raise ValueError(f"behaviour {item.name} must be one of {', '.join(choices)}; got {value!r}")
        for name in ("bigin_unapproved_share", "linkflow_bulk_omission_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"behaviour {name} must lie in [0, 1]")
        if self.zoho_token_chain_limit < 1 or self.clicksend_poll_rules < 0:
            raise ValueError("zoho_token_chain_limit must be positive and clicksend_poll_rules not negative")
        zone_named(self.linkflow_zone)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: "Behaviours | None" = None) -> "Behaviours":
        """Overlay JSON-like data (the admin endpoint, ``sandbox --behaviour``) on ``base``; unknown
        keys are an error."""
        known = {item.name for item in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown behaviours {sorted(unknown)}; known: {', '.join(sorted(known))}")
        return replace(base or cls(), **dict(data))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
