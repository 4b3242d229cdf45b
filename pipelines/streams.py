"""The source objects of the contract, named once for asset keys, the warehouse, the CLI and logs."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Stream:
    """One source object that the pipeline extracts, and whether reverse sync writes to it."""

    source: str
    object: str
    writable: bool
    activity: bool = False

    @property
    def name(self) -> str:
        return f"{self.source}/{self.object}"


STREAMS: tuple[Stream, ...] = (
    Stream("clickfunnels", "contact", writable=True),
    Stream("clicksend", "list_contact", writable=True),
    Stream("clicksend", "sms", writable=False, activity=True),
    Stream("linkflow", "contact", writable=True),
    Stream("linkflow", "event", writable=False, activity=True),
    Stream("zoho_crm", "lead", writable=True),
    Stream("zoho_crm", "contact", writable=True),
    Stream("zoho_bigin", "contact", writable=True),
)
