"""Which ClickSend and Linkflow creates the contacts gained since the extract hold back."""

from models.push.late_arrivals import held_back
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
