"""Settings: every variable of the public contract, typed, read from the environment and ``.env``.

A bad value must stop the program at start with one line naming the variable, the value and what is
allowed; pydantic's own multi-line report is turned into that line by :func:`load_settings`.
Credentials are ``SecretStr`` so they print as stars wherever the object is shown.
"""

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import phonenumbers
from dagster._utils.schedules import get_smallest_cron_interval, is_valid_cron_string
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from connectors.config import DEFAULT_MATON_GATEWAY
from models.mappings import Mappings, load_mappings
from models.normalise.given_names import read_nickname_file
from pipelines.streams import STREAMS

SOURCES: tuple[str, ...] = ("clickfunnels", "clicksend", "linkflow", "zoho_crm", "zoho_bigin")
MATON_SOURCES: tuple[str, ...] = ("clickfunnels", "clicksend", "zoho_crm", "zoho_bigin")
PUSH_MODES: tuple[str, ...] = ("on", "dry-run", "off")

#: The variable that would enable each source, for the one-line "skipped" message.
CREDENTIAL_VARIABLES: dict[str, str] = {
    "clickfunnels": "MATON_API_KEY",
    "clicksend": "MATON_API_KEY",
    "zoho_crm": "MATON_API_KEY",
    "zoho_bigin": "MATON_API_KEY",
    "linkflow": "LINKFLOW_APP_KEY and LINKFLOW_APP_SECRET",
}


WRITABLE: tuple[str, ...] = tuple(stream.name for stream in STREAMS if stream.writable)
OVERWRITABLE_FIELDS: tuple[str, ...] = ("first_name", "last_name", "company", "title", "city", "country")
"""Email and phone are identifiers: replacing them at a destination is never done by configuration."""


def parse_overwrite(text: str) -> dict[tuple[str, str], frozenset[str]]:
    """``dest/object:field,field;...`` as a mapping; raises ValueError naming what is allowed."""
    result: dict[tuple[str, str], frozenset[str]] = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        destination, _, names = part.partition(":")
        fields = {name.strip() for name in names.split(",") if name.strip()}
        if destination.strip() not in WRITABLE or not fields or not fields <= set(OVERWRITABLE_FIELDS):
            raise ValueError(
                "must look like 'zoho_crm/lead:first_name,last_name;...' with destinations from "
                + ", ".join(WRITABLE)
                + " and fields from "
                + ", ".join(OVERWRITABLE_FIELDS)
            )
        source, _, obj = destination.strip().partition("/")
        result[(source, obj)] = frozenset(fields)
    return result


#: What a create needs to name per destination: where the new record goes.
CREATE_PARENTS: dict[str, str] = {
    "clickfunnels/contact": "workspace id",
    "clicksend/list_contact": "list id",
    "linkflow/contact": "UDC channel id",
}


def parse_create(text: str) -> dict[tuple[str, str], str | None]:
    """``dest/object[=parent];...`` as destination -> parent (None where the API needs none)."""
    result: dict[tuple[str, str], str | None] = {}
    example = "'zoho_crm/lead;clicksend/list_contact=<list id>'"
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        destination, _, parent = (piece.strip() for piece in part.partition("="))
        if destination not in WRITABLE:
            raise ValueError(f"must look like {example} with destinations from " + ", ".join(WRITABLE))
        if destination in CREATE_PARENTS and not parent:
            raise ValueError(
                f"{destination} needs the {CREATE_PARENTS[destination]} to create into: "
                f"'{destination}=<{CREATE_PARENTS[destination]}>'"
            )
        source, _, obj = destination.partition("/")
        twin = next((f"{source}/{other}" for held, other in result if held == source and other != obj), None)
        if twin is not None:
            # A person the system lacks would be created in both objects of one run: twice in Zoho CRM.
            raise ValueError(
                f"names both {twin} and {destination}: a person {source} lacks would be created in both; "
                "name one of them"
            )
        result[(source, obj)] = parent or None
    return result


FRESHNESS_INTERVALS = 4
"""Schedule intervals a stream may go without a successful extract, unless the setting says otherwise."""

SURVIVING_FIELDS: tuple[str, ...] = ("email", "phone", *OVERWRITABLE_FIELDS)


def parse_source_priority(text: str) -> dict[str, tuple[str, ...]]:
    """``field,field:source,source;...`` as a mapping; raises ValueError naming what is allowed."""
    result: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        names, _, sources = part.partition(":")
        fields = [name.strip() for name in names.split(",") if name.strip()]
        order = tuple(source.strip() for source in sources.split(",") if source.strip())
        if (
            not fields
            or not order
            or not set(fields) <= set(SURVIVING_FIELDS)
            or not set(order) <= set(SOURCES)
        ):
            raise ValueError(
                "must look like 'first_name,last_name:zoho_crm,clickfunnels;...' with fields from "
                + ", ".join(SURVIVING_FIELDS)
                + " and sources from "
                + ", ".join(SOURCES)
            )
        result.update(dict.fromkeys(fields, order))
    return result


class SettingsError(ValueError):
    """A setting has a value the program cannot use; ``str()`` is the one line to show the user."""


def _one_of(allowed: tuple[str, ...]) -> str:
    return "must be one of " + ", ".join(allowed)


def _check_region(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            "must be an ISO 3166 two-letter country code known to libphonenumber (e.g. US, CN, GB)"
        )
    return region


class Settings(BaseSettings):
    """Every setting of the contract; field names match the variables case-insensitively."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    contact_sync_database_url: str = "sqlite:///contact_sync.db"
    maton_api_key: SecretStr | None = None
    maton_gateway_url: str = DEFAULT_MATON_GATEWAY
    maton_connection_clickfunnels: SecretStr | None = None
    maton_connection_clicksend: SecretStr | None = None
    maton_connection_zoho_crm: SecretStr | None = None
    maton_connection_zoho_bigin: SecretStr | None = None
    linkflow_app_key: SecretStr | None = None
    linkflow_app_secret: SecretStr | None = None
    linkflow_base_url: str = "https://open.linkflowtech.com"
    contact_sync_sources: str | None = None
    contact_sync_default_phone_region: str = "US"
    contact_sync_phone_region_clickfunnels: str | None = None
    contact_sync_phone_region_clicksend: str | None = None
    contact_sync_phone_region_linkflow: str | None = None
    contact_sync_phone_region_zoho_crm: str | None = None
    contact_sync_phone_region_zoho_bigin: str | None = None
    contact_sync_push: Literal["on", "dry-run", "off"] = "on"
    contact_sync_cron: str = "*/15 * * * *"
    # Additions to the contract: the request budgets the HTTP layer keeps to. The gateway allows 10
    # per second in a sliding window; at exactly 10 the jitter of arrivals still provokes some 429s.
    contact_sync_maton_rps: float = Field(default=9.5, gt=0)
    contact_sync_linkflow_rps: float = Field(default=5.0, gt=0)
    # Reverse sync fills empty fields only; this opts named fields into overwriting non-empty values,
    # per destination: "zoho_crm/lead:first_name,last_name;clicksend/list_contact:company".
    contact_sync_push_overwrite: str | None = None
    # Creating records for golden contacts a destination system does not hold yet is off unless named
    # here, with where creates go: "zoho_crm/lead;clicksend/list_contact=123;linkflow/contact=<channel>".
    contact_sync_push_create: str | None = None
    # Streams without a delete feed to trust but with a full listing (ClickFunnels contacts, ClickSend
    # list contacts, Zoho Bigin contacts) are scanned whole at most this often, to mark the records
    # they no longer list as deleted.
    contact_sync_full_scan_hours: float = Field(default=24.0, gt=0)
    # How far before each stream's watermark an incremental read starts, re-reading what changed just
    # before it (a record committed late under an earlier time); unset: each connector's own (5 min
    # ClickFunnels and Zoho, 10 min ClickSend and Linkflow).
    contact_sync_lookback_minutes: float | None = Field(default=None, ge=0)
    # The blocking checks of the canonical step look only at the records a run re-resolved; the whole
    # warehouse is checked on a full refresh, after a failure, and at least this often (0: every run).
    contact_sync_full_check_hours: float = Field(default=24.0, ge=0)
    # Identity resolution: extra identifiers never used to link (emails, `*` globs, E.164 phones), the
    # record count past which a shared identifier stops linking, and per-field source priorities:
    # "first_name,last_name:zoho_crm,clickfunnels;company:zoho_crm".
    contact_sync_blocked_identifiers: str | None = None
    contact_sync_max_records_per_identifier: int = Field(default=25, ge=2)
    contact_sync_source_priority: str | None = None
    # Household splitting: records linked only by a shared phone or address stay apart when their first
    # names clearly differ; extra nickname pairs come from a CSV file of `name,nickname` lines.
    contact_sync_household_split: Literal["on", "off"] = "on"
    contact_sync_nicknames: Path | None = None
    # The mappings file: golden fields beyond the built-in ones (interface "Mappings file"). Its content
    # is checked by `mappings()` at the start of every command that uses it, one line per problem.
    contact_sync_mappings: Path | None = None

    @field_validator("contact_sync_mappings", mode="before")
    @classmethod
    def _mappings_path(cls, value: Any) -> Any:
        if value is None or str(value).strip() == "":
            return None
        return Path(str(value).strip()).expanduser()

    def mappings(self) -> Mappings | None:
        """The checked mappings file, None when unset; raises `models.mappings.MappingsError`."""
        return None if self.contact_sync_mappings is None else load_mappings(self.contact_sync_mappings)

    # Consent: reverse sync carries an email opt-out to Zoho's Email_Opt_Out (false to true only).
    contact_sync_consent_push: Literal["on", "off"] = "on"

    @field_validator("contact_sync_household_split", "contact_sync_consent_push", mode="before")
    @classmethod
    def _household_split(cls, value: Any) -> Any:
        text = str(value).strip().lower()
        if text not in ("on", "off"):
            raise ValueError(_one_of(("on", "off")))
        return text

    @field_validator("contact_sync_nicknames", mode="before")
    @classmethod
    def _nicknames(cls, value: Any) -> Any:
        if value is None or str(value).strip() == "":
            return None
        path = Path(str(value).strip()).expanduser()
        try:
            read_nickname_file(path)  # a missing or malformed file is refused at start, in one line
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        return path

    def nickname_pairs(self) -> tuple[tuple[str, str], ...]:
        """The user's extra (name, nickname) pairs, from ``CONTACT_SYNC_NICKNAMES``."""
        if self.contact_sync_nicknames is None:
            return ()
        return tuple(read_nickname_file(self.contact_sync_nicknames))

    # Freshness: how long a stream may go without a successful extract before its check turns red
    # (and Dagster's freshness policy on its asset, before a run has reached it at all). Unset: four
    # intervals of CONTACT_SYNC_CRON, so one or two missed or failed runs stay green.
    contact_sync_freshness_minutes: int | None = Field(default=None, ge=1)
    # Alerts: where a failed run is posted (Slack-compatible; its URL usually carries a token, so it
    # is a secret), the UI the post links to, and after how many failed runs in a row a stream that
    # keeps failing is announced again.
    contact_sync_alert_webhook: SecretStr | None = None
    contact_sync_ui_url: str | None = None
    contact_sync_alert_after_failures: int = Field(default=3, ge=1)

    @field_validator("contact_sync_push", mode="before")
    @classmethod
    def _push_mode(cls, value: Any) -> Any:
        text = str(value).strip().lower()
        if text not in PUSH_MODES:
            raise ValueError(_one_of(PUSH_MODES))
        return text

    @field_validator("contact_sync_sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if value is None or str(value).strip() == "":
            return None
        names = [part.strip().lower() for part in str(value).split(",") if part.strip()]
        unknown = [name for name in names if name not in SOURCES]
        if unknown:
            raise ValueError("must be a comma-separated subset of " + ",".join(SOURCES))
        return ",".join(dict.fromkeys(names))

    @field_validator(
        "contact_sync_default_phone_region",
        "contact_sync_phone_region_clickfunnels",
        "contact_sync_phone_region_clicksend",
        "contact_sync_phone_region_linkflow",
        "contact_sync_phone_region_zoho_crm",
        "contact_sync_phone_region_zoho_bigin",
        mode="before",
    )
    @classmethod
    def _region(cls, value: Any) -> Any:
        return _check_region(None if value is None else str(value))

    @field_validator("contact_sync_cron", mode="before")
    @classmethod
    def _cron(cls, value: Any) -> Any:
        text = str(value).strip()
        if not is_valid_cron_string(text):
            raise ValueError("must be a five-field cron expression such as '*/15 * * * *'")
        return text

    @field_validator("maton_gateway_url", "linkflow_base_url", mode="before")
    @classmethod
    def _url(cls, value: Any) -> Any:
        text = str(value).strip()
        if not text.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return text.rstrip("/")

    @field_validator("contact_sync_alert_webhook", mode="before")
    @classmethod
    def _webhook(cls, value: Any) -> Any:
        text = "" if value is None else str(getattr(value, "get_secret_value", lambda: value)()).strip()
        if not text:
            return None
        if not text.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return text

    @field_validator("contact_sync_ui_url", mode="before")
    @classmethod
    def _ui_url(cls, value: Any) -> Any:
        if value is None or str(value).strip() == "":
            return None
        return cls._url(value)

    @field_validator("contact_sync_push_overwrite", mode="before")
    @classmethod
    def _overwrite(cls, value: Any) -> Any:
        if value is None or str(value).strip() == "":
            return None
        parse_overwrite(str(value))
        return str(value).strip()

    @field_validator("contact_sync_push_create", mode="before")
    @classmethod
    def _create(cls, value: Any) -> Any:
        if value is None or str(value).strip() == "":
            return None
        parse_create(str(value))
        return str(value).strip()

    @field_validator("contact_sync_source_priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        if value is None or str(value).strip() == "":
            return None
        parse_source_priority(str(value))
        return str(value).strip()

    def freshness_window(self) -> timedelta:
        """How long an extract stream may go without succeeding before it counts as stale."""
        if self.contact_sync_freshness_minutes is not None:
            return timedelta(minutes=self.contact_sync_freshness_minutes)
        return FRESHNESS_INTERVALS * get_smallest_cron_interval(self.contact_sync_cron, "UTC")

    def alert_webhook(self) -> str | None:
        """The URL alerts are posted to; None turns alerts off."""
        return self.contact_sync_alert_webhook.get_secret_value() if self.contact_sync_alert_webhook else None

    def secret_values(self) -> list[str]:
        """Every credential's value, for scrubbing text that leaves the process (alerts)."""
        secrets = [
            getattr(self, name)
            for name in type(self).model_fields
            if isinstance(getattr(self, name), SecretStr)
        ]
        values = [secret.get_secret_value() for secret in secrets]
        password = sa_url_password(self.contact_sync_database_url)
        return [value for value in [*values, password] if value and len(value) >= 4]

    def source_priority(self) -> dict[str, tuple[str, ...]]:
        """Per canonical field, the sources whose values win regardless of recency, best first."""
        return parse_source_priority(self.contact_sync_source_priority or "")

    def blocked_identifiers(self) -> tuple[frozenset[str], tuple[str, ...], frozenset[str]]:
        """(emails, email globs, phones) the user added to the built-in blocklist."""
        values = [v.strip() for v in (self.contact_sync_blocked_identifiers or "").split(",") if v.strip()]
        emails = frozenset(v.casefold() for v in values if "@" in v and "*" not in v)
        patterns = tuple(v.casefold() for v in values if "@" in v and "*" in v)
        phones = frozenset(v for v in values if "@" not in v)
        return emails, patterns, phones

    def push_overwrite(self) -> dict[tuple[str, str], frozenset[str]]:
        """Per destination, the canonical fields whose non-empty values reverse sync may replace."""
        return parse_overwrite(self.contact_sync_push_overwrite or "")

    def push_create(self) -> dict[tuple[str, str], str | None]:
        """Destinations opted into creates, each with the container creates go to (None: not needed)."""
        return parse_create(self.contact_sync_push_create or "")

    @property
    def database_url(self) -> str:
        return self.contact_sync_database_url

    @property
    def push(self) -> str:
        return self.contact_sync_push

    def has_credentials(self, source: str) -> bool:
        """Whether ``source`` can run: Maton apps need the gateway key, Linkflow its key and secret."""
        if source in MATON_SOURCES:
            return _present(self.maton_api_key)
        if source == "linkflow":
            return _present(self.linkflow_app_key) and _present(self.linkflow_app_secret)
        raise KeyError(source)

    def requested_sources(self) -> tuple[str, ...]:
        """The sources ``CONTACT_SYNC_SOURCES`` names, or all five when it is unset."""
        if self.contact_sync_sources is None:
            return SOURCES
        return tuple(self.contact_sync_sources.split(","))

    def enabled_sources(self) -> tuple[str, ...]:
        """Requested sources that also have credentials: the ones a sync actually reads."""
        return tuple(source for source in self.requested_sources() if self.has_credentials(source))

    def skipped_sources(self) -> dict[str, str]:
        """Requested sources without credentials, each with the one line that says how to enable it."""
        return {
            source: f"{source}: skipped, no credentials (set {CREDENTIAL_VARIABLES[source]} to enable it)"
            for source in self.requested_sources()
            if not self.has_credentials(source)
        }

    def maton_connection(self, source: str) -> str | None:
        """The ``Maton-Connection`` header value for ``source``, when the account has several."""
        secret: SecretStr | None = getattr(self, f"maton_connection_{source}", None)
        return secret.get_secret_value() if _present(secret) and secret is not None else None

    def phone_region(self, source: str, account_country: str | None = None) -> str:
        """The region used to read a phone without a country code, by the contract's order of precedence.

        An explicit per-source variable wins; then the account's own country as its API reports it;
        then ``CN`` for Linkflow (its numbers are national Chinese mobiles); then the default.
        """
        explicit: str | None = getattr(self, f"contact_sync_phone_region_{source}")
        if explicit:
            return explicit
        account_region = _check_region_quietly(account_country)
        if account_region:
            return account_region
        if source == "linkflow":
            return "CN"
        return self.contact_sync_default_phone_region


def sa_url_password(url: str) -> str | None:
    """The password in a database URL, if it has one (and parses)."""
    try:
        return make_url(url).password
    except Exception:
        return None


def _present(secret: SecretStr | None) -> bool:
    return secret is not None and secret.get_secret_value().strip() != ""


def _check_region_quietly(value: str | None) -> str | None:
    try:
        return _check_region(value)
    except ValueError:
        return None


def _describe(error: Mapping[str, Any]) -> str:
    field = str(error["loc"][0]) if error.get("loc") else "settings"
    variable = field.upper()
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if message.startswith("Input should be"):
        message = "must be " + message.removeprefix("Input should be ")
    if field.startswith(("maton_api_key", "maton_connection", "linkflow_app", "contact_sync_alert_webhook")):
        return f"{variable} {message}"
    return f"{variable} {message}; got {error.get('input')!r}"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning any validation failure into one readable :class:`SettingsError` line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise SettingsError("; ".join(lines)) from None
