"""Households: people who share a landline or an email, and first names that vary from system to system.

Off by default (``generate_dataset(..., households=True)`` turns it on), because it breaks the default
data's promise that two people never share a usable identifier: linking on emails and phones alone
then glues some people together, which is what household-aware linking has to undo. What it adds:

* **landline households**: two or three people sharing one fixed line (US numbers, or Chinese fixed
  lines written ``021-50001234`` in Linkflow and ``+86 21 5000 1234`` elsewhere), each with their own
  email and sometimes their own mobile. US members usually share one last name; a Chinese household
  is two parents with their own surnames and a child with the father's;
* **couples sharing one email** (``smith.family.12@gmail.com``), each with their own phone. Only the
  first member has a ClickFunnels record, since ClickFunnels holds one contact per email;
* **first names that vary per record** for everyone: a nickname in some systems and the full name in
  others (Bob / Robert, Bill / William, Liz / Elizabeth), an initial ("R."), or no first name at all
  (never on a person's first record, which always carries a full or nick name);
* Chinese names as the default data has them: Han characters in Linkflow most of the time (``王伟``),
  pinyin everywhere else (``Wei Wang``).

Members of one household get first names that no reasonable reader could take for one person: no two
share an initial across their full names and nicknames, nor a nickname group (Elizabeth and Betty or
Lisa never live together). So whenever both first names are present, names can tell members apart;
what no rule can decide is a record without a first name holding only a shared identifier, and such
records are the honest remainder a benchmark should expect.

The truth stays in ``Dataset.truth`` (the person behind every record) and ``Dataset.households``
(each household's kind, members and shared identifier); neither is served by the APIs.
"""

import dataclasses
from collections.abc import Iterator

from connectors.emulator.dataset import Dataset, Household
from connectors.emulator.identifiers import cn_landline, household_us_number
from connectors.emulator.people import _CN_FAMILY, _CN_GIVEN, _US_FIRST, Person, Phone, make_person
from connectors.emulator.rand import SandboxRandom

#: Default share of people who live in a household (share a landline or an email with someone).
HOUSEHOLD_SHARE = 0.05
#: Share of households that share a landline; the others are couples sharing an email.
LANDLINE_SHARE = 0.6
#: Share of landline households with three members (else two).
THREE_MEMBERS = 0.45
#: Share of US landline households / US couples whose members share one last name.
SAME_LAST_NAME = {"landline": 0.9, "shared_email": 0.7}
#: Share of people with a nickname-able first name who go by a nickname in some systems.
NICKNAME_SHARE = 0.4
#: Chance that a record of someone with a nickname carries the nickname.
NICKNAME_USE = 0.5
#: Chance that a record other than a person's first one has no first name.
MISSING_FIRST_NAME = 0.1
#: Chance that a record other than a person's first one carries only the initial ("R.") of a US name.
INITIAL_ONLY = 0.03
#: Chance that a record other than a person's first one, holding an email and a phone, holds the
#: person's work email instead of their own: for a landline household's member, that record then
#: reaches the person's other records only through the shared line.
WORK_EMAIL_INSTEAD = 0.15

#: The nicknames records may carry for a first name of the generator's list.
NICKNAMES: dict[str, tuple[str, ...]] = {
    "James": ("Jim", "Jimmy"),
    "Robert": ("Bob", "Rob", "Bobby"),
    "John": ("Johnny", "Jack"),
    "Michael": ("Mike",),
    "David": ("Dave",),
    "William": ("Bill", "Will", "Billy"),
    "Richard": ("Rick", "Rich", "Dick"),
    "Joseph": ("Joe",),
    "Thomas": ("Tom", "Tommy"),
    "Charles": ("Charlie", "Chuck"),
    "Daniel": ("Dan", "Danny"),
    "Matthew": ("Matt",),
    "Anthony": ("Tony",),
    "Steven": ("Steve",),
    "Andrew": ("Andy", "Drew"),
    "Joshua": ("Josh",),
    "Patricia": ("Pat", "Patty", "Trish"),
    "Jennifer": ("Jen", "Jenny"),
    "Elizabeth": ("Liz", "Beth", "Lizzie"),
    "Barbara": ("Barb",),
    "Susan": ("Sue", "Susie"),
    "Jessica": ("Jess",),
    "Sandra": ("Sandy",),
    "Michelle": ("Shelly",),
    "Amanda": ("Mandy",),
}
# First names of the list that nickname lists also tie to another one: never two in one household.
_ALSO_ALIKE = {"Elizabeth": ("Betty", "Lisa"), "Betty": ("Elizabeth",), "Lisa": ("Elizabeth",)}


def name_forms(first_name: str) -> frozenset[str]:
    """Every spelling a reader could take for this first name: itself, its nicknames, the full
    names it is a nickname of, and the names lists tie to it."""
    forms = {first_name, *NICKNAMES.get(first_name, ()), *_ALSO_ALIKE.get(first_name, ())}
    forms.update(full for full, short in NICKNAMES.items() if first_name in short)
    return frozenset(forms)


def alike(first: str, second: str) -> bool:
    """Whether two first names could be one person's: a shared form or a shared initial of a form."""
    one, two = name_forms(first), name_forms(second)
    return bool(one & two) or bool({f[0] for f in one} & {f[0] for f in two})


def with_name_variants(rng: SandboxRandom, person: Person) -> Person:
    """The person with varying first names across records, and a nickname when they go by one."""
    nicknames = NICKNAMES.get(person.first_name)
    nickname = rng.pick(nicknames) if nicknames and rng.random() < NICKNAME_SHARE else None
    return dataclasses.replace(person, name_variants=True, nickname=nickname)


def _mean_size() -> float:
    landline = 2 + THREE_MEMBERS
    return LANDLINE_SHARE * landline + (1 - LANDLINE_SHARE) * 2


def household_people(
    dataset: Dataset,
    rng: SandboxRandom,
    people: int,
    *,
    start: float,
    end: float,
    share: float = HOUSEHOLD_SHARE,
) -> Iterator[Person]:
    """``people`` people, numbered 1.., about ``share`` of them in households (recorded in
    ``dataset.households``)."""
    if not 0 <= share <= 1:
        raise ValueError(f"household share must lie in [0, 1]; got {share}")
    size = _mean_size()
    # Each new person starts a household with this chance, which puts ``share`` of people in one.
    starts = share / (size - share * (size - 1))
    pid = 1
    while pid <= people:
        left = people - pid + 1
        if left >= 2 and rng.random() < starts:
            members = _household(dataset, rng, pid, left=left, start=start, end=end)
        else:
            members = [make_person(rng, pid, start, end)]
        for member in members:
            yield with_name_variants(rng, member)
        pid += len(members)


def _household(
    dataset: Dataset, rng: SandboxRandom, pid: int, *, left: int, start: float, end: float
) -> list[Person]:
    hid = len(dataset.households) + 1
    kind = "landline" if rng.random() < LANDLINE_SHARE else "shared_email"
    size = 3 if kind == "landline" and left >= 3 and rng.random() < THREE_MEMBERS else 2
    head = make_person(rng, pid, start, end)
    members = [head]
    for member in range(1, size):
        person = make_person(rng, pid + member, start, end, region=head.region)
        person = _renamed(rng, person, head, member=member, kind=kind, taken=[m.first_name for m in members])
        members.append(person)
    if kind == "landline":
        digits = "".join(household_us_number(hid)) if head.region == "US" else cn_landline(hid)
        line = Phone(head.region, digits, landline=True)
        members = [dataclasses.replace(m, phone=line, household=hid, member=i) for i, m in enumerate(members)]
        shared = f"phone:{line.e164}"
    else:
        address = _shared_email(rng, hid, head, members[1])
        members = [
            dataclasses.replace(m, email=address, household=hid, member=i) for i, m in enumerate(members)
        ]
        shared = f"email:{address}"
    dataset.households[hid] = Household(hid, kind, tuple(m.pid for m in members), shared)
    return members


def _renamed(
    rng: SandboxRandom, person: Person, head: Person, *, member: int, kind: str, taken: list[str]
) -> Person:
    """A member with a first name unlike the others' and the household's last name where it has one."""
    if person.region == "US":
        first = person.first_name
        for _ in range(100):
            if not any(alike(first, other) for other in taken):
                break
            first = rng.pick(_US_FIRST)
        last = head.last_name if rng.random() < SAME_LAST_NAME[kind] else person.last_name
        return _with_name(person, first, last, None)
    (given, given_local), (family, family_local) = _cn_parts(person)
    for _ in range(100):
        if not any(alike(given, other) for other in taken):
            break
        given, given_local = rng.pick(_CN_GIVEN)
    if kind == "landline" and member == 2:
        # The child of a Chinese household carries the father's surname; the mother keeps her own.
        (family, family_local) = _cn_parts(head)[1]
    return _with_name(person, given, family, family_local + given_local)


def _cn_parts(person: Person) -> tuple[tuple[str, str], tuple[str, str]]:
    """((given pinyin, given Han), (family pinyin, family Han)) of a Chinese person."""
    local = person.local_name or ""
    family_local = dict(_CN_FAMILY)[person.last_name]
    return (person.first_name, local[len(family_local) :]), (person.last_name, family_local)


def _with_name(person: Person, first: str, last: str, local_name: str | None) -> Person:
    """The person renamed, their own email following the new name (as a person picks an address)."""
    domain = person.email.partition("@")[2]
    email = f"{first}.{last}{person.pid}@{domain}".lower()
    return dataclasses.replace(person, first_name=first, last_name=last, local_name=local_name, email=email)


def _shared_email(rng: SandboxRandom, hid: int, head: Person, partner: Person) -> str:
    """A couple's address; two dots in its local part, so it never equals anyone's own address."""
    domain = head.email.partition("@")[2]
    first, second, last = head.first_name, partner.first_name, head.last_name
    local = rng.pick((f"{last}.family.{hid}", f"{first}.and.{second}.{hid}", f"{first}{second}.{last}.{hid}"))
    return f"{local}@{domain}".lower()
