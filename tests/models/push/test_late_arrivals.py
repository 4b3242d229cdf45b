"""Which creates the records gained since the extract hold back, and which updates the records changed
since then hold back."""

from models.push.late_arrivals import changed_since_extract, held_back, unguarded_updates
from models.push.plan import RecordChange


def create(contact_id: str, **payload: str) -> RecordChange:
    return RecordChange("clicksend", "list_contact", None, contact_id, "77", dict(payload), None)


def reasons(
    creates: list[RecordChange],
    arrived: list[dict[str, str | None]],
    stored: dict[str, dict[str, str]] | None = None,
) -> dict[str, str]:
    return held_back(
        creates,
        arrived,
        stored or {},
        destination="clicksend",
        obj="list_contact",
        region="US",
        container="list 77",
    )


def test_a_phone_typed_another_way_or_an_email_in_other_case_holds_the_create_back() -> None:
    creates = [
        create("c_1", phone_number="+14155550123", first_name="Rua"),
        create("c_2", email="ana.lima@example.com"),
        create("c_3", phone_number="+14155550199", email="tom@example.com"),
    ]
    arrived = [{"phone_number": "(415) 555-0123"}, {"email": "Ana.Lima@Example.COM", "phone_number": ""}]
    assert reasons(creates, arrived) == {
        "c_1": "not created: list 77 gained a contact with this phone after the extract; "
        "the next sync links it instead",
        "c_2": "not created: list 77 gained a contact with this email after the extract; "
        "the next sync links it instead",
    }


def test_unusable_values_match_nothing() -> None:
    """An empty or invalid phone in the list is no one's: it holds back no create without a phone."""
    creates = [create("c_1", email="rua@example.com"), create("c_2", phone_number="+14155550123")]
    arrived = [{"phone_number": "12", "email": "not an email"}, {"phone_number": None, "email": None}]
    assert reasons(creates, arrived) == {}
    assert reasons(creates, []) == {}


def test_a_value_the_extract_already_read_holds_back_nothing() -> None:
    """A household member's contact, read and kept apart by identity resolution, holds the phone: the
    person still gets a contact of their own. The same contact edited to the person's email since the
    extract is the person arriving."""
    creates = [create("c_1", phone_number="+14155550123", email="rua@example.com")]
    member = {"contact_id": "9", "phone_number": "+1 415 555 0123", "email": "sam@example.com"}
    stored = {"9": {"contact_id": "9", "phone_number": "4155550123", "email": "sam@example.com"}}
    assert reasons(creates, [member], stored) == {}
    edited = {**member, "email": "RUA@example.com"}
    assert set(reasons(creates, [edited], stored)) == {"c_1"}
    assert set(reasons(creates, [member])) == {"c_1"}  # not read yet: new to us


def test_a_linkflow_mobile_without_its_country_code_holds_back_the_create_of_its_e164_form() -> None:
    """Linkflow writes Chinese mobiles without +86 and names its contacts by ``id``."""
    creates = [
        RecordChange("linkflow", "contact", None, "c_1", "udc-1", {"mobilePhone": "13774202819"}, None),
        RecordChange("linkflow", "contact", None, "c_2", "udc-1", {"email": "li@example.cn"}, None),
    ]
    arrived = [{"id": 5, "mobilePhone": "+86 137 7420 2819"}, {"id": 6, "email": "li@example.cn"}]
    stored = {"6": {"id": 6, "email": "LI@example.cn"}}
    found = held_back(
        creates, arrived, stored, destination="linkflow", obj="contact", region="CN", container="Linkflow"
    )
    assert found == {
        "c_1": "not created: Linkflow gained a contact with this phone after the extract; "
        "the next sync links it instead"
    }


def test_an_update_is_held_only_when_a_field_it_writes_changed_since_the_extract() -> None:
    """A fill of an empty field someone filled since would overwrite them; a change to another field
    of the record leaves ours safe, and a record nobody touched is not in the look at all."""
    updates = [
        RecordChange("clickfunnels", "contact", "11", "c_1", "7", {"phone_number": "+14155550123"}, None),
        RecordChange("clickfunnels", "contact", "12", "c_2", "7", {"phone_number": "+14155550124"}, None),
        RecordChange("clickfunnels", "contact", "13", "c_3", "7", {"phone_number": "+14155550125"}, None),
    ]
    stored = {
        "11": {"id": 11, "phone_number": None},
        "12": {"id": 12, "phone_number": None, "first_name": "A"},
    }
    arrived = [
        {"id": 11, "phone_number": "(415) 555-0199"},
        {"id": 12, "phone_number": None, "first_name": "Ann"},
    ]
    assert changed_since_extract(updates, arrived, stored, destination="clickfunnels", obj="contact") == {
        "11": "not written: record 11 changed at the destination since the extract (phone_number); "
        "planned again from the next extract"
    }


def test_only_the_destinations_whose_updates_carry_no_condition_are_looked_at_for_them() -> None:
    assert [
        unguarded_updates(*key) for key in (("clickfunnels", "contact"), ("clicksend", "list_contact"))
    ] == [
        True,
        True,
    ]
    assert unguarded_updates("linkflow", "contact")
    assert not unguarded_updates("zoho_crm", "lead")  # If-Unmodified-Since: a 412 says it instead
    assert not unguarded_updates("zoho_bigin", "contact")
