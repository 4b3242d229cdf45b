"""Linkflow's ``props`` go out whole: the keys as last read, the planned ones over them."""

from models.push.plan import RecordChange
from models.push.whole_objects import records_needing_whole, with_whole_objects


def change(dest: str, obj: str, record_id: str | None, payload: dict[str, object]) -> RecordChange:
    return RecordChange(dest, obj, record_id, "c1", None, payload, None)


def test_a_linkflow_prop_write_carries_the_props_it_does_not_change() -> None:
    planned = [change("linkflow", "contact", "7", {"props": {"attr3": "pro"}, "email": "a@x.com"})]
    held = {"7": {"props": {"attr1": "single", "attr2": 500, "attr3": "free"}, "email": None}}
    assert records_needing_whole(planned) == ["7"]
    [sent] = with_whole_objects(planned, held)
    assert sent.payload == {"props": {"attr1": "single", "attr2": 500, "attr3": "pro"}, "email": "a@x.com"}


def test_other_writes_go_as_planned() -> None:
    planned = [
        change("linkflow", "contact", "7", {"email": "a@x.com"}),  # no props written
        change("clickfunnels", "contact", "9", {"custom_attributes": {"plan": "pro"}}),  # merged by the API
        change("linkflow", "contact", None, {"props": {"attr3": "pro"}}),  # a create: nothing held
        change("linkflow", "contact", "8", {"props": {"attr3": "pro"}}),  # never read
    ]
    held = {"9": {"custom_attributes": {"a": "b"}}, "7": {"props": {"attr1": "x"}}}
    assert records_needing_whole(planned) == ["8"]
    assert with_whole_objects(planned, held) == planned
