"""``contact-sync check``: per source, whether a sync would work, from a handful of read-only requests.

For each configured source it asks the API what a sync depends on and lays the answers out as a table:
the host answers, the credentials are accepted, the Maton connection exists, each contract object
answers one small page, the account's country and time zone, and what it detected of the behaviours
the vendors leave open. Every problem carries one line of advice. A failure means a sync of that
source (or of that object) would fail; a warning means it would work with less (no delete feed, no
POLL rule). Nothing is written: every request is a GET of one small page.

A source's questions are a ``Plan``: the first request (which tells a refused key from a missing
connection), one small read per contract object, then a list of detections, each a small function
returning its rows.

The same check runs at the start of every sync (``sync_start_check``), cached in the warehouse for a
day per source and run again when a setting it depends on changes, so a sync with a rejected key stops
early with the advice instead of a deep error. Only results that would sync are cached.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy.engine import Engine

from connectors import probes
from connectors.config import DEFAULT_LINKFLOW_URL, DEFAULT_MATON_GATEWAY, MATON_APPS, HttpOptions
from connectors.errors import ConnectorError
from connectors.factory import Clients
from connectors.http import RetryPolicy, Timeouts
from connectors.stop import STOP
from models.mappings.metadata import linkflow_catalogue, metadata_problems, zoho_catalogue
from models.push.required_fields import create_requirements, written_fields
from models.warehouse.source_checks import cached_check, store_check
from pipelines.clients import clients_for, zoho_module
from pipelines.settings import CREDENTIAL_VARIABLES, MATON_SOURCES, Settings

Level = Literal["ok", "info", "warning", "failure"]
LABELS: dict[str, str] = {"ok": "ok", "info": "-", "warning": "warn", "failure": "FAIL"}
NOT_GIVEN = "not given by the API"
MATON_KEYS_PAGE = "https://maton.ai/settings"
"""Where Maton's own guide sends a user for the API key (maton-ai/api-gateway-skill, README)."""
MATON_CONNECTIONS = "https://api.maton.ai/connections"
"""Maton's connection management since 2026-04-30 (formerly ctrl.maton.ai; api-notes §1.1)."""
APP_NAMES: dict[str, str] = {
    "clickfunnels": "ClickFunnels",
    "clicksend": "ClickSend",
    "zoho_crm": "Zoho CRM",
    "zoho_bigin": "Zoho Bigin",
    "linkflow": "Linkflow",
}
CHECK_OPTIONS = HttpOptions(
    retry=RetryPolicy(max_attempts=3, budget=20.0),
    timeouts=Timeouts(connect=5.0, read=30.0, write=30.0, pool=10.0),
)
"""The command gives up sooner than a sync: a person is waiting for the table."""
CHECK_MAX_AGE = timedelta(hours=24)
"""How long a sync trusts a passing check: a few requests per source per day."""


@dataclass(frozen=True)
class Row:
    """One line of a source's table."""

    check: str
    result: str
    level: Level = "info"
    advice: str | None = None
    object: str | None = None
    """The contract object the row is about; a failure without one stops the whole source."""

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.level,
            "result": self.result,
            "advice": self.advice,
            "object": self.object,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Row":
        return cls(data["check"], data["result"], data["status"], data.get("advice"), data.get("object"))


@dataclass(frozen=True)
class SourceCheck:
    """What the check found for one source (``skipped`` says why it was not checked)."""

    source: str
    rows: tuple[Row, ...] = ()
    skipped: str | None = None

    @property
    def state(self) -> str:
        if self.skipped is not None:
            return "skipped"
        levels = {row.level for row in self.rows}
        return "failed" if "failure" in levels else "warning" if "warning" in levels else "ok"

    @property
    def would_sync(self) -> bool:
        return self.state != "failed"

    def problems(self) -> list[Row]:
        return [row for row in self.rows if row.level in ("warning", "failure")]

    def problem_for(self, obj: str) -> str | None:
        """The advice of the first failure that stops ``obj`` (one of the source's or the object's)."""
        for row in self.rows:
            if row.level == "failure" and row.object in (None, obj):
                return _advice(row)
        return None

    def first_failure(self) -> str | None:
        return next((_advice(row) for row in self.rows if row.level == "failure"), None)

    def summary(self) -> str:
        """``would sync``, ``would sync, 1 warning`` or ``would not sync: <advice>``."""
        if not self.would_sync:
            return f"would not sync: {self.first_failure()}"
        warnings = len(self.problems())
        return "would sync" + (f", {warnings} warning{'s' if warnings > 1 else ''}" if warnings else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "state": self.state,
            "skipped": self.skipped,
            "rows": [row.to_json() for row in self.rows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SourceCheck":
        return cls(data["source"], tuple(Row.from_json(r) for r in data["rows"]), data.get("skipped"))


def _advice(row: Row) -> str:
    return row.advice or f"{row.check}: {row.result}"


@dataclass(frozen=True)
class CheckReport:
    """Every checked source, in the order asked."""

    sources: tuple[SourceCheck, ...]

    @property
    def would_sync(self) -> bool:
        return all(check.would_sync for check in self.sources)

    def failure_line(self) -> str:
        """One line naming each failing source with its first problem (sources sharing one, together)."""
        groups: dict[str, list[str]] = {}
        for check in self.sources:
            failure = check.first_failure()
            if failure is not None:
                groups.setdefault(failure, []).append(check.source)
        return "check: a sync would fail for " + "; ".join(
            f"{', '.join(names)}: {advice}" for advice, names in groups.items()
        )

    def lines(self) -> list[str]:
        """The table, then one line per problem, then the verdict."""
        table = [("SOURCE", "CHECK", "STATUS", "RESULT")]
        for check in self.sources:
            if check.skipped is not None:
                table.append((check.source, "skipped", LABELS["info"], check.skipped))
            for index, row in enumerate(check.rows):
                table.append((check.source if index == 0 else "", row.check, LABELS[row.level], row.result))
        widths = [max(len(line[column]) for line in table) for column in range(3)]
        out = [
            "  ".join(line[column].ljust(widths[column]) for column in range(3)) + "  " + line[3]
            for line in table
        ]
        problems = [(check.source, row) for check in self.sources for row in check.problems()]
        if problems:
            out.append("")
            out.extend(f"{LABELS[row.level]:<4}  {source}: {_advice(row)}" for source, row in problems)
        out.append("")
        out.append(self.verdict())
        return out

    def verdict(self) -> str:
        failed = [check.source for check in self.sources if not check.would_sync]
        if failed:
            return f"a sync would fail for {', '.join(failed)}"
        warnings = sum(len(check.problems()) for check in self.sources)
        return "a sync would work" + (
            f", with {warnings} warning{'s' if warnings > 1 else ''}" if warnings else ""
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "would_sync": self.would_sync,
            "failed": [check.source for check in self.sources if not check.would_sync],
            "sources": [check.to_json() for check in self.sources],
        }


# ------------------------------------------------------------------------------------ plans


@dataclass
class Probe:
    """What one source's check has in hand: its client, the settings, and what earlier steps learned."""

    source: str
    client: Any
    settings: Settings
    replies: list[probes.Reply] = field(default_factory=list)
    """Answers kept for detections that read their headers (Zoho's credits)."""
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """The small page read per object, for detections that compare against it."""


Access = Callable[[Probe], list[Row]]
ObjectRead = Callable[[Probe], str]
Detect = Callable[[Probe], list[Row]]


@dataclass(frozen=True)
class Plan:
    """A source's questions: the first request, one small read per object, then the detections."""

    access: Access
    objects: tuple[tuple[str, ObjectRead], ...]
    detections: tuple[tuple[str, Detect], ...] = ()


def _host(url: str) -> str:
    """``host[:port]`` of a URL, never its user part (a URL may carry credentials)."""
    return urlsplit(url).netloc.rpartition("@")[2] or url


def _account_rows(facts: probes.AccountFacts) -> list[Row]:
    return [Row("country", facts.country or NOT_GIVEN), Row("time zone", facts.time_zone or NOT_GIVEN)]


def _maton_access(
    ask: Callable[[Any], probes.Reply], facts: Callable[[probes.Reply], probes.AccountFacts]
) -> Access:
    """The first request of a Maton app: the gateway's own refusals tell a bad key from a missing
    connection (401 and 400 in Maton's envelope, api-notes §1.2); the app's refusals come after."""

    def access(probe: Probe) -> list[Row]:
        reply = ask(probe.client)
        probe.replies.append(reply)
        source, settings = probe.source, probe.settings
        name, app = APP_NAMES[source], MATON_APPS[source]
        rows = [Row("gateway", f"{_host(settings.maton_gateway_url)} answers", "ok")]
        if reply.status == 401 and probes.refused_by_gateway(reply):
            advice = (
                f"MATON_API_KEY rejected ({reply.line()}): create a new key at {MATON_KEYS_PAGE} "
                "and set MATON_API_KEY to it"
            )
            return [*rows, Row("credentials", "rejected (401)", "failure", advice)]
        rows.append(Row("credentials", "accepted", "ok"))
        variable = f"MATON_CONNECTION_{source.upper()}"
        named = settings.maton_connection(source) is not None
        if reply.status == 400 and probes.refused_by_gateway(reply):
            if named:
                advice = (
                    f"Maton has no active connection with the id {variable} names ({reply.line()}): "
                    f"set it to an active {name} connection listed at {MATON_CONNECTIONS}"
                )
            else:
                advice = (
                    f"Maton has no {name} connection for this key ({reply.line()}): connect {name} "
                    f"at {MATON_CONNECTIONS} (app {app}), or set {variable} to an active one's id"
                )
            return [*rows, Row("connection", "not found (400)", "failure", advice)]
        if reply.refused:
            return [
                *rows,
                Row("connection", f"{name} refused ({reply.status})", "failure", _app_refusal(source, reply)),
            ]
        found = f"found ({variable})" if named else "found (the gateway's default for the app)"
        return [*rows, Row("connection", found, "ok"), *_account_rows(facts(reply))]

    return access


def _app_refusal(source: str, reply: probes.Reply) -> str:
    name, app = APP_NAMES[source], MATON_APPS[source]
    if reply.status in (401, 403):
        return (
            f"{name} refused the Maton connection ({reply.line()}): reconnect {name} at {MATON_CONNECTIONS} "
            f"(app {app}) with read access to contacts"
        )
    return (
        f"{name} answered {reply.line()} through the gateway: check that MATON_GATEWAY_URL is Maton's "
        f"gateway (Maton documents {DEFAULT_MATON_GATEWAY} today)"
    )


def _linkflow_access(probe: Probe) -> list[Row]:
    """A token fetched now proves the key and secret; Linkflow has no account endpoint."""
    probes.linkflow_token(probe.client)
    return [
        Row("host", f"{_host(probe.settings.linkflow_base_url)} answers", "ok"),
        Row("credentials", "accepted (token issued)", "ok"),
        Row("country", NOT_GIVEN),
    ]


def _access_failure(probe: Probe, exc: ConnectorError) -> list[Row]:
    """Rows for a first request that raised: an unreachable host, rejected Linkflow credentials, or
    the error line itself (a 5xx that outlasted the retries, an answer of the wrong shape)."""
    linkflow = probe.source == "linkflow"
    variable = "LINKFLOW_BASE_URL" if linkflow else "MATON_GATEWAY_URL"
    url = probe.settings.linkflow_base_url if linkflow else probe.settings.maton_gateway_url
    documented = DEFAULT_LINKFLOW_URL if linkflow else DEFAULT_MATON_GATEWAY
    host_row = "host" if linkflow else "gateway"
    if exc.status is None:
        advice = f"the configured {variable} ({_host(url)}) does not answer ({exc.message})"
        if url.rstrip("/") != documented:
            advice += f": {'Linkflow' if linkflow else 'Maton'} documents {documented} today"
        else:
            advice += ": check the network and any proxy between this machine and it"
        return [Row(host_row, f"{_host(url)} does not answer", "failure", advice)]
    answers = Row(host_row, f"{_host(url)} answers", "ok")
    if linkflow and exc.path == "/token" and exc.status in (400, 401, 403):
        said = " ".join(filter(None, (str(exc.status), exc.code and f"{exc.code}:", exc.message)))
        advice = (
            f"LINKFLOW_APP_KEY and LINKFLOW_APP_SECRET rejected ({said}): copy the key and secret of a "
            "private app from Linkflow's admin console into them"
        )
        return [answers, Row("credentials", f"rejected ({exc.status})", "failure", advice)]
    advice = str(exc)
    if exc.status == 500 and probe.source in MATON_SOURCES:
        advice += (
            f": Maton says a 500 most often means the app's OAuth connection expired; reconnect "
            f"{APP_NAMES[probe.source]} at {MATON_CONNECTIONS}"
        )
    return [answers, Row("credentials", "not confirmed", "failure", advice)]


def _object_advice(source: str, exc: ConnectorError) -> str:
    if exc.status in (401, 403) and source in MATON_SOURCES:
        return f"{exc}: reconnect {APP_NAMES[source]} at {MATON_CONNECTIONS} granting read access to it"
    return str(exc)


# ---------------------------------------------------------------------------- object reads


def _zoho_object(module: str) -> ObjectRead:
    def read(probe: Probe) -> str:
        reply, records = probes.zoho_sample(probe.client, module)
        probe.replies.append(reply)
        probe.samples[module] = records
        return "readable" if records else "readable (empty)"

    return read


def _clickfunnels_contacts(probe: Probe) -> str:
    workspaces = probe.client.workspace_ids()
    for workspace in workspaces:
        probes.clickfunnels_contacts(probe.client, workspace)
    return f"readable ({len(workspaces)} workspace{'s' if len(workspaces) != 1 else ''})"


def _clicksend_list_contacts(probe: Probe) -> str:
    lists = probes.clicksend_page(probe.client, "/v3/lists")
    first = next((item.get("list_id") for item in lists if item.get("list_id") is not None), None)
    if first is None:
        return "readable (no lists)"
    probes.clicksend_page(probe.client, "/v3/lists/{list_id}/contacts", {"list_id": str(first)})
    return "readable"


def _clicksend_sms(probe: Probe) -> str:
    probes.clicksend_page(probe.client, "/v3/sms/history")
    return "readable (history)"


def _linkflow_object(template: str, params: dict[str, Any]) -> ObjectRead:
    def read(probe: Probe) -> str:
        probes.linkflow_page(probe.client, template, params)
        return "readable"

    return read


# ------------------------------------------------------------------------------ detections


def _bigin_if_modified_since(probe: Probe) -> list[Row]:
    check = "If-Modified-Since"
    oldest = probes.oldest_modified(probe.samples.get("Contacts", []))
    if oldest is None:
        return [Row(check, "cannot tell: no contact to compare with yet")]
    reply, honoured = probes.zoho_honours_if_modified_since(probe.client, "Contacts", oldest)
    probe.replies.append(reply)
    if honoured:
        return [Row(check, "honoured")]
    return [Row(check, "ignored: incremental reads go newest first down to the stored watermark")]


def _bigin_deleted_feed(probe: Probe) -> list[Row]:
    reply, feed = probes.zoho_deleted_feed(probe.client, "Contacts")
    probe.replies.append(reply)
    if feed:
        return [Row("/deleted feed", "available", "ok")]
    answer = reply.line()
    advice = (
        f"Bigin has no /deleted feed ({answer}): deleted contacts are found by a periodic full id scan "
        "instead, so they show up later"
    )
    return [Row("/deleted feed", f"none ({answer})", "warning", advice, object="contact")]


def _zoho_credits(probe: Probe) -> list[Row]:
    check = "API credits left"
    left = probes.credits_left(probe.replies)
    if left is None:
        return [Row(check, "not reported (Zoho reports them once half the day's credits are spent)")]
    if left > 0:
        return [Row(check, str(left))]
    advice = (
        "no Zoho API credits left in this 24-hour window: Zoho refuses requests (429) until they renew; "
        "sync less often or raise the edition's limit"
    )
    return [Row(check, "0", "warning", advice)]


def _linkflow_events_order(probe: Probe) -> list[Row]:
    order = probe.client.detect_events_order()
    if order != "newest_tail":
        return [Row("events order", order)]
    advice = (
        "/events/lite answers only the newest events above the cursor: a backlog larger than one page "
        "(a first sync, a long pause) is read per contact, one request per contact"
    )
    return [Row("events order", "newest first, a tail", "warning", advice, object="event")]


SHANGHAI = "UTC+08:00"
"""The offset the product assumes for Linkflow's zone-less times (api-notes §4.1)."""


def _linkflow_zone(probe: Probe) -> list[Row]:
    zone = probe.client.detect_zone()
    if zone is None:
        return [Row("time zone", "unknown (the API gave no handle on it)")]
    if zone == SHANGHAI:
        return [Row("time zone", zone)]
    advice = (
        f"Linkflow writes its times in {zone}, not Shanghai time as assumed: nothing is lost (watermarks "
        "come from the records' own times), but Linkflow records' modification times, which decide "
        "recency in survivorship, are off by the difference"
    )
    return [Row("time zone", zone, "warning", advice, object="contact")]


POLL_ADVICE = {
    "inbound": (
        "inbound SMS",
        "no POLL rule for inbound SMS: inbound messages cannot be read; add an inbound rule with action "
        "POLL in ClickSend (Automations)",
    ),
    "receipts": (
        "delivery receipts",
        "no POLL rule for delivery receipts: receipts cannot be read, statuses come from the history's "
        "re-read only; add a delivery-receipt rule with action POLL in ClickSend (Automations)",
    ),
}


def _clicksend_poll_rules(probe: Probe) -> list[Row]:
    rules = probe.client.poll_rules()
    rows = []
    for attribute, (what, advice) in POLL_ADVICE.items():
        present = getattr(rules, attribute)
        check = f"POLL rule, {what}"
        if present is None:
            rows.append(Row(check, "cannot tell"))
        elif present:
            rows.append(Row(check, "present", "ok"))
        else:
            rows.append(Row(check, "missing", "warning", advice, object="sms"))
    return rows


PLANS: dict[str, Plan] = {
    "clickfunnels": Plan(
        _maton_access(probes.clickfunnels_teams, probes.clickfunnels_account),
        objects=(("contact", _clickfunnels_contacts),),
    ),
    "clicksend": Plan(
        _maton_access(probes.clicksend_account_reply, probes.clicksend_account),
        objects=(("list_contact", _clicksend_list_contacts), ("sms", _clicksend_sms)),
        detections=(("POLL rules", _clicksend_poll_rules),),
    ),
    "linkflow": Plan(
        _linkflow_access,
        objects=(
            ("contact", _linkflow_object("/v2/contacts_bulk/ids", {"page": 0, "size": 1})),
            ("event", _linkflow_object("/events/lite", {"lastMaxId": 0, "size": 1})),
        ),
        detections=(("time zone", _linkflow_zone), ("events order", _linkflow_events_order)),
    ),
    "zoho_crm": Plan(
        _maton_access(probes.zoho_org, probes.zoho_account),
        objects=(("lead", _zoho_object("Leads")), ("contact", _zoho_object("Contacts"))),
        detections=(("API credits left", _zoho_credits),),
    ),
    "zoho_bigin": Plan(
        _maton_access(probes.zoho_org, probes.zoho_account),
        objects=(("contact", _zoho_object("Contacts")),),
        detections=(
            ("If-Modified-Since", _bigin_if_modified_since),
            ("/deleted feed", _bigin_deleted_feed),
            ("API credits left", _zoho_credits),
        ),
    ),
}


# ----------------------------------------------------------------------------------- running


def check_source(source: str, settings: Settings, clients: Clients) -> SourceCheck:
    """Ask one source the plan's questions, stopping after the first request if it was refused."""
    client = getattr(clients, source)
    if client is None:
        return SourceCheck(
            source, skipped=f"no credentials (set {CREDENTIAL_VARIABLES[source]} to enable it)"
        )
    plan = PLANS[source]
    probe = Probe(source, client, settings)
    try:
        rows = plan.access(probe)
    except ConnectorError as exc:
        return SourceCheck(source, tuple(_access_failure(probe, exc)))
    if any(row.level == "failure" for row in rows):
        return SourceCheck(source, tuple(rows))
    for obj, read in plan.objects:
        try:
            rows.append(Row(obj, read(probe), "ok", object=obj))
        except ConnectorError as exc:
            rows.append(Row(obj, "not readable", "failure", _object_advice(source, exc), object=obj))
    for name, detect in plan.detections:
        try:
            rows.extend(detect(probe))
        except ConnectorError as exc:
            rows.append(Row(name, "could not tell", "warning", f"{name} could not be probed: {exc}"))
    rows.extend(mapping_rows(probe))
    rows.extend(create_rows(probe))
    return SourceCheck(source, tuple(rows))


#: Where each source object's field list is asked for: Zoho per module, Linkflow's custom properties.
_CATALOGUES: dict[tuple[str, str], Callable[[Any], dict[str, str]]] = {
    ("zoho_crm", "lead"): lambda c: zoho_catalogue(probes.zoho_field_list(c, "Leads")),
    ("zoho_crm", "contact"): lambda c: zoho_catalogue(probes.zoho_field_list(c, "Contacts")),
    ("zoho_bigin", "contact"): lambda c: zoho_catalogue(probes.zoho_field_list(c, "Contacts")),
    ("linkflow", "contact"): lambda c: linkflow_catalogue(probes.linkflow_properties(c)),
}


def mapping_rows(probe: Probe) -> list[Row]:
    """The mappings file's paths of this source against the account's own field lists: a failure per
    path it lacks (for that object), nothing when the file maps nothing here."""
    mappings = probe.settings.mappings()
    if mappings is None:
        return []
    rows: list[Row] = []
    for (source, obj), catalogue in _CATALOGUES.items():
        if source != probe.source or not mappings.for_object(source, obj):
            continue
        try:
            found = {(source, obj): catalogue(probe.client)}
        except ConnectorError as exc:
            rows.append(Row("mappings", "could not tell", "warning", f"field list not readable: {exc}"))
            continue
        problems = metadata_problems(mappings, found)
        rows.extend(
            Row("mappings", "path not in the account", "failure", line, object=obj) for line in problems
        )
        if not problems:
            rows.append(Row("mappings", f"{obj}: mapped paths found", object=obj))
    return rows


def create_rows(probe: Probe) -> list[Row]:
    """For each Zoho object reverse sync creates into (``CONTACT_SYNC_PUSH_CREATE``), what its layouts
    make mandatory beyond ``Last_Name`` (`models.push.required_fields`): a warning when nothing writes
    such a field (every create there would be refused) or the layouts cannot be read."""
    if probe.source not in ("zoho_crm", "zoho_bigin"):
        return []
    rows: list[Row] = []
    for source, obj in sorted(probe.settings.push_create()):
        if source != probe.source:
            continue
        check, module = f"creates ({obj})", zoho_module(obj)
        try:
            layouts = probe.client.layouts(module)
        except ConnectorError as exc:
            product = "ZohoBigin" if source == "zoho_bigin" else "ZohoCRM"
            scope = (
                f"; give the connection the settings scope ({product}.settings.layouts.READ)"
                if exc.status in (401, 403)
                else ""
            )
            advice = (
                f"the {module} layouts are not readable ({exc}): creates go out without knowing which "
                f"fields Zoho makes mandatory, and Zoho refuses those without them{scope}"
            )
            rows.append(Row(check, "layouts not readable", "warning", advice, object=obj))
            continue
        required = create_requirements(source, obj, layouts)
        unwritten = sorted(required - set(written_fields(source, obj, probe.settings.mappings())))
        if unwritten:
            names = ", ".join(unwritten)
            advice = (
                f"the {module} layouts make {names} mandatory and nothing writes it: every create there "
                "would be refused; make it optional in Zoho, or map a golden field to it "
                "(CONTACT_SYNC_MAPPINGS)"
            )
            rows.append(Row(check, f"{names} mandatory, not written", "warning", advice, object=obj))
        elif required:
            needed = ", ".join(sorted(required))
            rows.append(Row(check, f"need {needed} too (a contact without it is not created)", object=obj))
        else:
            rows.append(Row(check, "need nothing beyond Last_Name", object=obj))
    return rows


def run_check(
    settings: Settings, sources: Sequence[str] = (), options: HttpOptions = CHECK_OPTIONS
) -> CheckReport:
    """Check ``sources`` (default: every requested one), as ``--source`` narrows a sync."""
    if sources:
        settings = settings.model_copy(update={"contact_sync_sources": ",".join(dict.fromkeys(sources))})
    wanted = settings.requested_sources()
    with clients_for(settings, wanted, options) as clients:
        return CheckReport(tuple(check_source(source, settings, clients) for source in wanted))


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def fingerprint(settings: Settings, source: str) -> str:
    """A one-way digest of what a source's check depends on: the URL, credentials and connection it
    used and the plan's questions (a version that asks more checks again). The credentials cannot be
    read back from it; it changes whenever one of them does."""
    if source == "linkflow":
        parts = [
            settings.linkflow_base_url,
            _secret(settings.linkflow_app_key),
            _secret(settings.linkflow_app_secret),
        ]
    else:
        parts = [
            settings.maton_gateway_url,
            MATON_APPS[source],
            _secret(settings.maton_api_key),
            settings.maton_connection(source) or "",
        ]
    mappings = settings.mappings()
    parts.append(mappings.fingerprint() if mappings is not None else "")
    parts.append(";".join(sorted(obj for dest, obj in settings.push_create() if dest == source)))
    plan = PLANS[source]
    parts += [name for name, _ in plan.objects] + [name for name, _ in plan.detections]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def sync_start_check(
    engine: Engine, settings: Settings, clients: Clients, source: str
) -> tuple[SourceCheck, datetime | None]:
    """The source's check as a sync starts: the cached result (and when it was made) while it is
    younger than a day and made under the same settings, else a fresh one (``None``), kept if it
    would sync."""
    digest = fingerprint(settings, source)
    cached = cached_check(engine, source, digest, CHECK_MAX_AGE)
    if cached is not None:
        result, checked_at = cached
        try:
            return SourceCheck.from_json(result), checked_at
        except (KeyError, TypeError):
            pass  # kept in a shape this version does not read: check again and keep the new result
    checked = check_source(source, settings, clients)
    if checked.would_sync:
        store_check(engine, source, digest, checked.to_json(), checkpoint=STOP.check)
    return checked, None
