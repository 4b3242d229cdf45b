"""Which golden-contact field goes to which field of each destination, and how reverse sync may write it.

Every mapped field is one the destination accepts on write and one `models.normalise.layouts` reads back on
extract, so what we push is exactly what identity resolution sees on the next cycle: that is what
keeps a push from echoing. A field that cannot be written as text is left out on purpose:

- Zoho Contacts (CRM and Bigin) keep the company in `Account_Name`, a lookup `{name, id}` to an
  Accounts record (api-notes §5.5, §6.3); writing text there is not a company name, so `company` has
  no mapping for them. Leads have a plain `Company` text field.
- ClickFunnels contacts have no company, title or address fields (api-notes §2.4).
- ClickSend keeps the country as an ISO alpha-2 code (`"address_country": "US"` in every sample of
  its spec and api-notes §3.4), so a golden country is sent as its code.
- Linkflow keeps one `name` (api-notes §4.3); it is written from first and last name together
  (canonical `full_name`), composed so that `split_name` reads the same two parts back.

Lengths: Zoho documents its standard fields' limits (Zoho CRM help, "Standard Modules & Fields": First
Name 40, Last Name 80, Title 100, Company 100, Phone 30, Email 100; address fields 250); Bigin mirrors
CRM [I]. The other APIs publish no limits, so the project-wide `MAX_TEXT_LENGTH` applies, which no
golden value exceeds anyway.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from models.mappings import Mappings
from models.normalise.field_values import MAX_TEXT_LENGTH

CANONICAL_FIELDS = ("email", "phone", "first_name", "last_name", "company", "title", "city", "country")
FULL_NAME = "full_name"
"""Derived canonical field: first and last name as one value, for destinations with a single name."""

Compare = Literal["email", "phone", "text", "country"]
"""How a destination value is compared with the golden one: emails in normalised form, phones as
E.164 (read with the record's own country, else the source's region), text trimmed and
whitespace-folded but case-sensitive, countries by ISO code when both sides name one."""

Style = Literal["as_is", "cn_national", "iso_country"]
"""How the outgoing value is written: as the golden value holds it (E.164 for phones); a Chinese
number as national digits without +86 (the way Linkflow stores mobiles, api-notes §4.3); a country as
its ISO alpha-2 code."""

Key = tuple[str, str]
"""(source, object), as in the interface's table of names."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One writable destination field: written and read back under the same payload key."""

    canonical: str
    field: str
    compare: Compare = "text"
    style: Style = "as_is"
    max_length: int = MAX_TEXT_LENGTH


@dataclass(frozen=True, slots=True)
class DestinationMap:
    """How reverse sync writes one source object.

    batch_size: records per write call (Zoho 100, api-notes §5.7 and §6.1; the others take one).
    create_requires: groups of canonical fields; a create needs at least one field of every group.
    create_needs_parent: a create must name its container (ClickSend list id, ClickFunnels workspace
        id, Linkflow UDC channel id), taken from `PushConfig.create_parents`.
    parent_path: where an existing record names its container, for updates that address it.
    guards_concurrency: the API takes If-Unmodified-Since (Zoho, api-notes §5.7).
    create_matches: canonical fields a create may be matched on to an existing record, which it then
        updates (`models.push.shared_identifiers`): Zoho's and ClickFunnels' upsert on the email,
        Linkflow's identify on the email or the mobile.
    identity_fields: canonical fields whose value the destination lets one record hold or may join
        records on, so it is never written to a record while another person's record holds it there;
        ``shared_value`` says what the destination would do (ClickFunnels refuses a taken email,
        Linkflow's contacts are identities that can merge, api-notes §4.2).
    """

    fields: tuple[FieldSpec, ...]
    batch_size: int = 1
    create_requires: tuple[tuple[str, ...], ...] = ()
    create_needs_parent: bool = False
    parent_path: str | None = None
    guards_concurrency: bool = False
    create_matches: tuple[str, ...] = ()
    identity_fields: tuple[str, ...] = ()
    shared_value: str = ""


def _zoho(*specs: FieldSpec) -> DestinationMap:
    # Upsert and insert both refuse a record without Last_Name (MANDATORY_NOT_FOUND, api-notes §5.5,
    # §6.1). Leads' Company may also be mandatory depending on the layout [?]; a rejection says so.
    return DestinationMap(
        fields=(
            FieldSpec("email", "Email", "email", max_length=100),
            FieldSpec("phone", "Phone", "phone", max_length=30),
            FieldSpec("first_name", "First_Name", max_length=40),
            FieldSpec("last_name", "Last_Name", max_length=80),
            *specs,
        ),
        batch_size=100,
        create_requires=(("last_name",),),
        guards_concurrency=True,
        create_matches=("email",),
    )


_ZOHO_CONTACT = _zoho(
    FieldSpec("title", "Title", max_length=100),
    FieldSpec("city", "Mailing_City", max_length=250),
    FieldSpec("country", "Mailing_Country", "country", max_length=250),
)

FIELD_MAPS: Mapping[Key, DestinationMap] = {
    # PUT /contacts/{id} updates; a create is an upsert on email_address, which it needs (§2.5).
    ("clickfunnels", "contact"): DestinationMap(
        fields=(
            FieldSpec("email", "email_address", "email"),
            FieldSpec("phone", "phone_number", "phone"),
            FieldSpec("first_name", "first_name"),
            FieldSpec("last_name", "last_name"),
        ),
        create_requires=(("email",),),
        create_needs_parent=True,
        parent_path="workspace_id",
        create_matches=("email",),
        identity_fields=("email",),
        shared_value="ClickFunnels holds one contact per email and refuses it",
    ),
    # PUT /lists/{list_id}/contacts/{id}; a create needs a list and a phone, email or fax (§3.5).
    ("clicksend", "list_contact"): DestinationMap(
        fields=(
            FieldSpec("email", "email", "email"),
            FieldSpec("phone", "phone_number", "phone"),
            FieldSpec("first_name", "first_name"),
            FieldSpec("last_name", "last_name"),
            FieldSpec("company", "organization_name"),
            FieldSpec("city", "address_city"),
            FieldSpec("country", "address_country", "country", style="iso_country"),
        ),
        create_requires=(("phone", "email"),),
        create_needs_parent=True,
        parent_path="list_id",
    ),
    # PUT /v2/contacts/{id}; a create is POST /identifiers under a UDC channel, and Linkflow refuses
    # a contact with neither email nor mobile (B00030, §4.4-4.5).
    ("linkflow", "contact"): DestinationMap(
        fields=(
            FieldSpec("email", "email", "email"),
            FieldSpec("phone", "mobilePhone", "phone", style="cn_national"),
            FieldSpec(FULL_NAME, "name"),
            FieldSpec("company", "company"),
            FieldSpec("title", "title"),
            FieldSpec("city", "city"),
            FieldSpec("country", "country", "country"),
        ),
        create_requires=(("phone", "email"),),
        create_needs_parent=True,
        create_matches=("email", "phone"),
        identity_fields=("email", "phone"),
        shared_value="Linkflow may merge contacts that share an email or mobile",
    ),
    ("zoho_crm", "lead"): _zoho(
        FieldSpec("company", "Company", max_length=100),
        # Leads name the job title "Designation" in the API.
        FieldSpec("title", "Designation", max_length=100),
        FieldSpec("city", "City", max_length=250),
        FieldSpec("country", "Country", "country", max_length=250),
    ),
    ("zoho_crm", "contact"): _ZOHO_CONTACT,
    ("zoho_bigin", "contact"): _ZOHO_CONTACT,
}


def destination_map(source: str, obj: str) -> DestinationMap:
    """The map of one destination; unknown names are a programming error, not bad data."""
    try:
        return FIELD_MAPS[(source, obj)]
    except KeyError:
        known = ", ".join(f"{s}/{o}" for s, o in FIELD_MAPS)
        raise ValueError(f"no field map for {source}/{obj}; known: {known}") from None


@dataclass(frozen=True, slots=True)
class PushConfig:
    """What reverse sync may do. Safe by default: it fills empty fields and nothing else.

    overwrite: per destination, the canonical fields whose non-empty values may be replaced.
    create_missing: destinations that get golden contacts they do not hold yet.
    create_parents: per destination, where creates go (ClickSend list id, ClickFunnels workspace id,
        Linkflow UDC channel id).
    create_fields_required: per destination, the destination's own field names a create must carry
        beyond the map's ``create_requires``, learnt from the destination when a run starts (Zoho's
        layouts, `models.push.required_fields`).
    opt_out_lists: ClickSend list ids that are never written (every account has an opt-out list,
        api-notes §3.4).
    regions: per source, the region its phones without "+" are read in, as identity resolution reads
        them (`CONTACT_SYNC_PHONE_REGION_<SOURCE>`); `default_region` for the rest.
    alias_domains: the email alias domains identity resolution strips, so emails compare alike.
    name_guard: never send a name to a record whose own first name disagrees with the golden one
        (`models.normalise.given_names`), with `nickname_pairs` extending the built-in nickname list;
        on whenever household splitting is.
    """

    overwrite: Mapping[Key, frozenset[str]] = field(default_factory=dict)
    create_missing: frozenset[Key] = frozenset()
    max_attempts: int = 3
    create_parents: Mapping[Key, str] = field(default_factory=dict)
    create_fields_required: Mapping[Key, frozenset[str]] = field(default_factory=dict)
    opt_out_lists: frozenset[str] = frozenset()
    regions: Mapping[str, str] = field(default_factory=lambda: {"linkflow": "CN"})
    default_region: str = "US"
    alias_domains: frozenset[str] = frozenset()
    name_guard: bool = True
    nickname_pairs: tuple[tuple[str, str], ...] = ()
    mappings: Mappings | None = None
    """The mappings file's golden fields, written by their own rules (`models.push.custom_plan`)."""
    consent_push: bool = True
    """Carry email opt-outs to the destinations that hold them (`models.push.consent`)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for key in (
            *self.overwrite,
            *self.create_missing,
            *self.create_parents,
            *self.create_fields_required,
        ):
            destination_map(*key)
        for key, names in self.overwrite.items():
            unknown = set(names) - {spec.canonical for spec in destination_map(*key).fields}
            if unknown:
                raise ValueError(f"{key[0]}/{key[1]} has no mapped field {', '.join(sorted(unknown))}")

    def region(self, source: str) -> str:
        """The region a source's phones without a country code are read in."""
        return self.regions.get(source, self.default_region)

    def fingerprint(self, destination: str, obj: str) -> str:
        """A short digest of every setting one destination's plan depends on: a plan made under other
        settings may differ for any record, so a change plans everything once
        (`models.push.ledger.PlanWatermark`). ``max_attempts`` is left out: it decides how a rejection
        ends, not what is planned; so are other destinations' settings."""
        key = (destination, obj)
        settings: tuple[object, ...] = (
            sorted(self.overwrite.get(key, frozenset())),
            key in self.create_missing,
            self.create_parents.get(key),
            sorted(self.opt_out_lists) if destination == "clicksend" else [],
            self.region(destination),
            sorted(self.alias_domains),
            self.name_guard,
            sorted(self.nickname_pairs),
            self.consent_push,
        )
        if self.mappings is not None:
            settings = (*settings, self.mappings.destination_fingerprint(destination, obj))
        required = self.create_fields_required.get(key, frozenset()) if key in self.create_missing else ()
        if required:
            # Only where it says something, so a destination without such fields keeps its fingerprint.
            settings = (*settings, sorted(required))
        return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]
