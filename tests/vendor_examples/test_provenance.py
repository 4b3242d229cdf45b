"""The data files are the vendors' examples and nothing else.

Spec examples are checked against the specs kept in this repository. Seed examples are the seed's
text itself (``../shared/seeds`` is outside the repository; the README says how to compare them);
here each is checked to need exactly the repairs it names.
"""

import json
from functools import cache
from typing import Any

import pytest
import yaml

from tests.vendor_examples.catalogue import DATA, EXAMPLES, REPAIRS, REPOSITORY, Example, load


@cache
def _spec(name: str) -> Any:
    text = (REPOSITORY / "specs" / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


def _at(source: str) -> Any:
    """The value a ``specs/<file>#<JSON pointer>`` source names (RFC 6901 escapes)."""
    name, pointer = source.removeprefix("specs/").split("#", 1)
    node = _spec(name)
    for part in pointer.removeprefix("/").split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


SPEC_EXAMPLES = {name: e for name, e in EXAMPLES.items() if e.from_spec}
SEED_EXAMPLES = {name: e for name, e in EXAMPLES.items() if not e.from_spec}


@pytest.mark.parametrize("name", sorted(SPEC_EXAMPLES))
def test_spec_example_equals_every_place_it_is_published(name):
    example = SPEC_EXAMPLES[name]
    for source in example.sources:
        assert _at(source) == example.load(), source


@pytest.mark.parametrize("name", sorted(SEED_EXAMPLES))
def test_seed_example_needs_exactly_the_repairs_it_names(name):
    """Without its repairs the text does not parse; leaving out any one repair still fails."""
    example = SEED_EXAMPLES[name]
    assert example.sources[0].startswith("seeds/")
    assert example.file.endswith(".txt")
    if not example.repairs:
        json.loads(example.text())
        return
    for left_out in example.repairs:
        text = example.text()
        for repair in example.repairs:
            if repair != left_out:
                text = REPAIRS[repair](text)
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
    example.load()


def test_every_data_file_is_one_catalogued_example():
    files = sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file())
    assert files == sorted(e.file for e in EXAMPLES.values())


def test_requote_restores_the_types_the_seed_values_had():
    """Numbers stay numbers, phones with ``+`` and names become text, empty lists and nulls stay."""
    account = load("cs_account")["data"]
    assert (account["user_id"], account["balance"], account["user_phone"], account["country"]) == (
        672721,
        2.005718,
        "+18019234886",
        "US",
    )
    contact = load("cf_contacts_seed")[0]
    assert (
        contact["first_name"],
        contact["phone_number"],
        contact["tags"],
        contact["custom_attributes"],
    ) == (
        "张三",
        None,
        [],
        {},
    )
    assert load("cf_teams")[0]["time_zone"] == "太平洋时间(美国及加拿大)"


def test_elision_drops_only_the_dots():
    """The events example keeps both events in full; the update answer keeps every field printed."""
    events = load("lf_events_lite")
    assert [e["id"] for e in events] == [1126251, 1066758]
    assert events[1]["attr2"].endswith("%E9%97%AE%E5%8D%B7%E7%...")
    updated: Example = EXAMPLES["lf_update_contact"]
    printed = [line for line in updated.text().splitlines() if '":' in line]
    assert len(printed) == len(_keys(updated.load()))


def _keys(value: Any) -> list[str]:
    """Every key of a JSON object, nested ones included."""
    if not isinstance(value, dict):
        return []
    found = []
    for key, item in value.items():
        found += [key, *_keys(item)]
    return found
