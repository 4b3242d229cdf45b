"""The mappings file's checks: the interface's sample is accepted, and every kind of problem gets one
line naming the file, the field and what is wrong."""

import pytest

from models.mappings import MappingsError, parse_mappings
from models.mappings.metadata import linkflow_catalogue, metadata_problems, zoho_catalogue

SAMPLE = """
fields:
  - name: plan
    type: choice
    choices: [free, pro, enterprise]
    sources:
      clickfunnels/contact: custom_attributes.plan
      clicksend/list_contact: custom_1
      linkflow/contact: props.attr2
      zoho_crm/contact: Customer_Plan
      zoho_crm/lead:
        path: Customer_Plan
        values: {Free: free, Pro: pro, Enterprise: enterprise}
        write: never
    survivorship: recency
    write: fill
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(MappingsError) as caught:
        parse_mappings(text, "m.yaml")
    return caught.value.problems


def one_field(body: str) -> str:
    return "fields:\n  - " + "\n    ".join(body.strip().splitlines()) + "\n"


def test_the_interface_sample_is_accepted() -> None:
    mappings = parse_mappings(SAMPLE, "m.yaml")
    (plan,) = mappings.fields
    assert plan.type == "choice"
    assert plan.priority == ()
    lead = next(m for m in plan.sources if m.key == ("zoho_crm", "lead"))
    assert lead.write == "never"
    assert lead.values["Pro"] == "pro"
    assert lead.outgoing("pro") == "Pro"
    assert next(m for m in plan.sources if m.source == "clicksend").write == "fill"
    assert mappings.zoho_fields("zoho_crm", "lead") == ("Customer_Plan",)


def test_the_fingerprint_follows_the_file() -> None:
    other = SAMPLE.replace("custom_1", "custom_2")
    assert parse_mappings(SAMPLE).fingerprint() != parse_mappings(other).fingerprint()
    assert parse_mappings(SAMPLE).fingerprint() == parse_mappings(SAMPLE).fingerprint()


T = "name: plan\ntype: text\n"
CS = "\nsources: {clicksend/list_contact: custom_1}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (T + CS + "\ncolour: red", "unknown key 'colour'"),
        ("name: Plan\ntype: text" + CS, "must be lower_snake_case"),
        ("name: company\ntype: text" + CS, "is a built-in field"),
        ("name: plan\ntype: money" + CS, "type must be one of"),
        ("name: plan\ntype: choice" + CS, "needs 'choices'"),
        (T + "choices: [a]" + CS, "for type choice only"),
        (T + "sources: {hubspot/contact: plan}", "unknown source object 'hubspot/contact'"),
        (T + "sources: {linkflow/event: props.a}", "unknown source object 'linkflow/event'"),
        (T + "sources: {clicksend/list_contact: custom_9}", "custom_1, custom_2"),
        (T + "sources: {clickfunnels/contact: plan}", "custom_attributes.<key>"),
        (T + "sources: {linkflow/contact: attr2}", "props.<alias>"),
        (T + "sources: {zoho_crm/lead: Email}", "built-in field lives"),
        (T + "sources: {zoho_crm/lead: A.b}", "one API name"),
        (T + "write: always" + CS, "write must be one of"),
        (
            T + "sources: {clicksend/list_contact: {path: custom_1, write: sometimes}}",
            "clicksend/list_contact: write must be one of",
        ),
        (
            "name: plan\ntype: choice\nchoices: [a]\nsources: {zoho_crm/lead: {path: P, values: {X: b}}}",
            "values map to b, not among the choices",
        ),
        (T + "survivorship: [zoho_crm, hubspot]" + CS, "unknown source hubspot"),
        (T + "survivorship: newest" + CS, "survivorship must be"),
        ("name: plan\ntype: text", "needs 'sources'"),
    ],
)
def test_each_problem_is_one_line_naming_file_and_field(body: str, expected: str) -> None:
    (line,) = problems_of(one_field(body))
    assert line.startswith("m.yaml: field ")
    assert expected in line
    assert "\n" not in line


def test_every_problem_of_a_file_is_reported_together() -> None:
    text = (
        "fields:\n"
        "  - {name: a, type: text, sources: {clicksend/list_contact: custom_1}}\n"
        "  - {name: b, type: text, sources: {clicksend/list_contact: custom_1}}\n"
        "  - {name: a, type: text, sources: {clicksend/list_contact: custom_2}}\n"
        "  - {name: email, type: blob, sources: {x/y: z}}\n"
        "extra: 1\n"
    )
    lines = problems_of(text)
    assert any("unknown key 'extra'" in line for line in lines)
    assert any("field a: is declared twice" in line for line in lines)
    assert any("already field a's" in line for line in lines)
    assert sum("field email:" in line for line in lines) == 3


def test_not_yaml_or_no_fields_is_one_line() -> None:
    assert problems_of("fields: [unclosed")[0].startswith("m.yaml: not valid YAML")
    assert problems_of("{}") == ["m.yaml: 'fields' must be a non-empty list of fields"]


def test_paths_are_checked_against_the_accounts_fields() -> None:
    text = (
        SAMPLE.replace("type: choice", "type: boolean")
        .replace("    choices: [free, pro, enterprise]\n", "")
        .replace("        values: {Free: free, Pro: pro, Enterprise: enterprise}\n", "")
    )
    mappings = parse_mappings(text, "m.yaml")
    catalogues = {
        ("zoho_crm", "lead"): zoho_catalogue(
            {"fields": [{"api_name": "Customer_Plan", "data_type": "date"}]}
        ),
        ("zoho_crm", "contact"): zoho_catalogue({"fields": [{"api_name": "Last_Name", "data_type": "text"}]}),
        ("linkflow", "contact"): linkflow_catalogue([{"alias": "attr2", "dataType": "text"}]),
    }
    assert metadata_problems(mappings, catalogues) == [
        "m.yaml: field plan: zoho_crm/contact: the account has no field 'Customer_Plan'",
        "m.yaml: field plan: zoho_crm/lead: 'Customer_Plan' is a date field; it cannot hold a boolean",
    ]
