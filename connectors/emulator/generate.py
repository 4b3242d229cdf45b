"""``generate_dataset``: people spread over the five systems with the mess real data has.

Deterministic for a seed and ``now``: one RNG drives everything in a fixed order. People live in one
to five systems; their emails arrive in mixed case with stray whitespace, their phones in local and
international forms; fields one system has another lacks; some people sit twice in one system; junk
identifiers (``test@test.com``, ``555-555-5555`` ...) are shared by strangers. The rule that keeps
the truth checkable: a person's records connect through shared usable identifiers, and two people
never share one (see ``placement``).

``households=True`` gives up that rule on purpose: some people share a landline or an email, and
first names vary between a person's records (see ``households``). The truth is then only what
``Dataset.truth`` says, record by record.
"""

from datetime import UTC, datetime

from connectors.emulator.activity import Activity, messageable
from connectors.emulator.behaviours import Behaviours
from connectors.emulator.dataset import (
    CLICKSEND_CONTACTS,
    DAY,
    LINKFLOW_CONTACTS,
    ZOHO_TABLES,
    Dataset,
    deleted_entry,
    deleted_table,
)
from connectors.emulator.households import HOUSEHOLD_SHARE, household_people
from connectors.emulator.people import make_person
from connectors.emulator.placement import Placer
from connectors.emulator.rand import SandboxRandom
from connectors.emulator.records import ZOHO_BIGIN_ID_PREFIX, ZOHO_CRM_ID_PREFIX, zoho_user
from connectors.emulator.store import collector_paused
from connectors.emulator.timefmt import ZOHO_BIGIN_OFFSET, ZOHO_CRM_OFFSET

_EVENT_COUNTS = (0, 0, 0, 1, 1, 2, 3, 5)


def generate_dataset(
    seed: int,
    people: int,
    now: datetime | None = None,
    *,
    households: bool = False,
    household_share: float = HOUSEHOLD_SHARE,
) -> Dataset:
    """People and their records, spread over the past two years before ``now`` (default: this second).

    ``households`` puts about ``household_share`` of the people in households sharing a landline or
    an email, and varies everyone's first name per record (nicknames, initials, missing ones); see
    ``households``. Off, the data is exactly what it always was for a seed.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    dataset = Dataset.empty(seed, moment)
    share = household_share if households else None
    with collector_paused():
        _fill(dataset, SandboxRandom(seed), people, moment.timestamp(), household_share=share)
    return dataset


def _fill(
    dataset: Dataset, rng: SandboxRandom, people: int, now: float, *, household_share: float | None
) -> None:
    placer = Placer(dataset, rng)
    start, end = now - 730 * DAY, now - 2 * 3600
    if household_share is not None:
        for person in household_people(dataset, rng, people, start=start, end=end, share=household_share):
            placer.place(person, now)
    else:
        for pid in range(1, people + 1):
            placer.place(make_person(rng, pid, start, end), now)
    for _ in range(max(1, people // 50)):
        placer.anonymous_clickfunnels_contact(now - rng.random() * 700 * DAY, now)
    placed = placer.commit()
    dataset.people = people
    activity = Activity(dataset, rng)
    contacts = dataset.tables[CLICKSEND_CONTACTS]
    for table, record_id, pid, created in placed:
        if table == LINKFLOW_CONTACTS:
            activity.events_for(record_id, pid, now=now, count=rng.pick(_EVENT_COUNTS), since=created)
        elif table == CLICKSEND_CONTACTS and messageable(contacts[record_id]) and rng.random() < 0.45:
            activity.messages_for(record_id, pid, now=now, count=1 + rng.below(3), since=created)
    for _ in range(max(1, people // 20)):
        activity.anonymous_event(now - rng.random() * 700 * DAY)
        activity.message_to_stranger(now - rng.random() * 700 * DAY, now)
    activity.commit()
    _add_old_deletions(dataset, rng, now, count=max(1, people // 100))


def _add_old_deletions(dataset: Dataset, rng: SandboxRandom, now: float, count: int) -> None:
    """Records deleted before the emulator started: seen only in Zoho's ``/deleted`` feed, which keeps
    each kind for its retention only, so they are drawn within it."""
    defaults = Behaviours()
    kept_days = {
        "recycle": defaults.zoho_recycle_retention_days,
        "permanent": defaults.zoho_permanent_retention_days,
    }
    for table in ZOHO_TABLES:
        app = table.partition("/")[0]
        bigin = app == "zoho_bigin"
        owner = zoho_user(ZOHO_BIGIN_ID_PREFIX if bigin else ZOHO_CRM_ID_PREFIX)
        for _ in range(count):
            record_id = dataset.zoho_id(app, rng)
            kind = rng.pick(("recycle", "permanent"))
            dataset.tables[deleted_table(table)][record_id] = deleted_entry(
                record_id,
                f"Deleted Person {record_id[-4:]}",
                kind=kind,
                when=now - rng.random() * kept_days[kind] * DAY,
                offset=ZOHO_BIGIN_OFFSET if bigin else ZOHO_CRM_OFFSET,
                owner=owner,
            )
