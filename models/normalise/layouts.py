"""Where each source object keeps the fields a golden contact is built from.

One `Layout` per source object (names as in the interface: clickfunnels/contact, clicksend/list_contact,
linkflow/contact, zoho_crm/lead, zoho_crm/contact, zoho_bigin/contact), from the record shapes in
api-notes §2.4, §3.4, §4.3, §5.5 and §6.3. Paths are payload keys; a dot reaches into a nested object.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

TimeFormat = Literal["iso", "unix", "shanghai"]

TEXT_FIELDS = ("first_name", "last_name", "company", "title", "city", "country")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one source object keeps each field; a tuple lists alternatives, the first present wins."""

    modified_at: str
    time_format: TimeFormat
    first_name: tuple[str, ...] = ()
    last_name: tuple[str, ...] = ()
    full_name: tuple[str, ...] = ()
    company: tuple[str, ...] = ()
    title: tuple[str, ...] = ()
    city: tuple[str, ...] = ()
    country: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    text_paths: Mapping[str, tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        paths = {name: getattr(self, name) for name in TEXT_FIELDS}
        object.__setattr__(self, "text_paths", paths)

    @property
    def paths(self) -> tuple[str, ...]:
        """Every payload path this layout reads, each once, in a stable order."""
        found: list[str] = []
        for group in (*self.text_paths.values(), self.full_name, self.emails, self.phones):
            found.extend(group)
        found.append(self.modified_at)
        return tuple(dict.fromkeys(found))


# Zoho keeps every phone a person has in these fields; Fax is left out because nobody answers it and
# faxes are shared by whole offices (api-notes §5.5).
_ZOHO_PHONES = ("Phone", "Mobile", "Home_Phone", "Other_Phone", "Asst_Phone")
_ZOHO_EMAILS = ("Email", "Secondary_Email")
_ZOHO_CONTACT = Layout(
    modified_at="Modified_Time",
    time_format="iso",
    first_name=("First_Name",),
    last_name=("Last_Name",),
    # Account_Name is a lookup {name, id}; the company is its name.
    company=("Account_Name.name",),
    title=("Title",),
    city=("Mailing_City", "Other_City"),
    country=("Mailing_Country", "Other_Country"),
    emails=_ZOHO_EMAILS,
    phones=_ZOHO_PHONES,
)

LAYOUTS: Mapping[tuple[str, str], Layout] = {
    ("clickfunnels", "contact"): Layout(
        modified_at="updated_at",
        time_format="iso",
        first_name=("first_name",),
        last_name=("last_name",),
        emails=("email_address",),
        phones=("phone_number",),
    ),
    ("clicksend", "list_contact"): Layout(
        modified_at="date_updated",
        time_format="unix",
        first_name=("first_name",),
        last_name=("last_name",),
        company=("organization_name",),
        city=("address_city",),
        country=("address_country",),
        emails=("email",),
        phones=("phone_number",),
    ),
    ("linkflow", "contact"): Layout(
        modified_at="lastUpdated",
        time_format="shanghai",
        full_name=("name",),
        company=("company",),
        title=("title",),
        city=("city",),
        country=("country",),
        emails=("email",),
        phones=("mobilePhone", "homePhone"),
    ),
    ("zoho_crm", "lead"): Layout(
        modified_at="Modified_Time",
        time_format="iso",
        first_name=("First_Name",),
        last_name=("Last_Name",),
        company=("Company",),
        # Leads call the job title "Designation" in the API; "Title" is its label in the UI.
        title=("Designation", "Title"),
        city=("City",),
        country=("Country",),
        emails=_ZOHO_EMAILS,
        phones=_ZOHO_PHONES,
    ),
    ("zoho_crm", "contact"): _ZOHO_CONTACT,
    ("zoho_bigin", "contact"): _ZOHO_CONTACT,
}


def layout(source: str, obj: str) -> Layout:
    """The layout of one source object; unknown names are a programming error, not bad data."""
    try:
        return LAYOUTS[(source, obj)]
    except KeyError:
        known = ", ".join(f"{s}/{o}" for s, o in LAYOUTS)
        raise ValueError(f"no field layout for {source}/{obj}; known: {known}") from None
