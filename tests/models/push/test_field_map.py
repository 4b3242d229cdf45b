"""The reverse-sync field map: every write is read back the same way, and the configuration refuses what
it cannot mean."""

import pytest

from models.normalise.layouts import LAYOUTS, layout
from models.push.field_map import CANONICAL_FIELDS, FIELD_MAPS, FULL_NAME, PushConfig, destination_map


def test_every_source_object_with_a_layout_has_a_map() -> None:
    assert set(FIELD_MAPS) == set(LAYOUTS)


@pytest.mark.parametrize("key", sorted(FIELD_MAPS))
def test_every_written_field_is_read_back_by_extraction(key: tuple[str, str]) -> None:
    """A field extraction never reads would be pushed again every cycle, since the plan could not
    see it filled."""
    assert {spec.field for spec in destination_map(*key).fields} <= set(layout(*key).paths)


@pytest.mark.parametrize("key", sorted(FIELD_MAPS))
def test_text_fields_are_the_first_place_extraction_looks(key: tuple[str, str]) -> None:
    """A written text field must be what identity reads when it is filled, or the plan would compare
    against a different field than the one it writes."""
    spec_layout = layout(*key)
    for spec in destination_map(*key).fields:
        if spec.canonical in spec_layout.text_paths:
            assert spec_layout.text_paths[spec.canonical][0] == spec.field
        elif spec.canonical == FULL_NAME:
            assert spec_layout.full_name == (spec.field,)


@pytest.mark.parametrize("key", sorted(FIELD_MAPS))
def test_each_destination_maps_a_canonical_field_once(key: tuple[str, str]) -> None:
    canonical = [spec.canonical for spec in destination_map(*key).fields]
    assert len(canonical) == len(set(canonical))
    assert set(canonical) <= {*CANONICAL_FIELDS, FULL_NAME}
    assert {"email", "phone"} <= set(canonical)


def test_zoho_contacts_never_write_the_account_lookup() -> None:
    for key in (("zoho_crm", "contact"), ("zoho_bigin", "contact")):
        assert "Account_Name" not in {spec.field for spec in destination_map(*key).fields}
        assert "company" not in {spec.canonical for spec in destination_map(*key).fields}
    assert {spec.canonical: spec.field for spec in destination_map("zoho_crm", "lead").fields}[
        "company"
    ] == "Company"


def test_batch_sizes_follow_each_api() -> None:
    sizes = {key: destination_map(*key).batch_size for key in FIELD_MAPS}
    assert sizes == {
        ("clickfunnels", "contact"): 1,
        ("clicksend", "list_contact"): 1,
        ("linkflow", "contact"): 1,
        ("zoho_crm", "lead"): 100,
        ("zoho_crm", "contact"): 100,
        ("zoho_bigin", "contact"): 100,
    }


def test_only_zoho_takes_if_unmodified_since() -> None:
    guarded = {key for key in FIELD_MAPS if destination_map(*key).guards_concurrency}
    assert guarded == {("zoho_crm", "lead"), ("zoho_crm", "contact"), ("zoho_bigin", "contact")}


def test_default_config_is_safe() -> None:
    config = PushConfig()
    assert dict(config.overwrite) == {}
    assert config.create_missing == frozenset()
    assert config.max_attempts == 3
    assert config.region("linkflow") == "CN"
    assert config.region("zoho_crm") == "US"
    assert PushConfig(regions={"zoho_crm": "GB"}, default_region="DE").region("clicksend") == "DE"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"overwrite": {("zoho_crm", "deal"): frozenset({"email"})}}, "no field map for zoho_crm/deal"),
        ({"overwrite": {("zoho_crm", "contact"): frozenset({"company"})}}, "no mapped field company"),
        ({"create_missing": frozenset({("clicksend", "sms")})}, "no field map for clicksend/sms"),
    ],
)
def test_config_refuses_what_it_cannot_mean(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PushConfig(**kwargs)  # type: ignore[arg-type]
