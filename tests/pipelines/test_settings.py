"""Settings: defaults, `.env`, one-line errors naming variable and value, and secrets kept hidden."""

from pathlib import Path

import pytest

from pipelines.clients import clients_for
from pipelines.resources import SyncSettingsResource, settings_resource
from pipelines.settings import SOURCES, SettingsError, load_settings


def test_defaults_follow_the_contract() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///contact_sync.db"
    assert settings.maton_gateway_url == "https://api.maton.ai"  # the host Maton documents today
    assert settings.linkflow_base_url == "https://open.linkflowtech.com"
    assert settings.push == "on"
    assert settings.contact_sync_cron == "*/15 * * * *"
    assert settings.contact_sync_default_phone_region == "US"
    assert settings.requested_sources() == SOURCES
    assert settings.enabled_sources() == ()


def test_bad_push_mode_is_one_line_with_variable_value_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACT_SYNC_PUSH", "yes")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value) == "CONTACT_SYNC_PUSH must be one of on, dry-run, off; got 'yes'"


def test_the_older_maton_host_keeps_working_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATON_GATEWAY_URL", "https://gateway.maton.ai/")
    monkeypatch.setenv("MATON_API_KEY", "k")
    settings = load_settings()
    assert settings.maton_gateway_url == "https://gateway.maton.ai"
    assert settings_resource(settings).settings().maton_gateway_url == "https://gateway.maton.ai"
    with clients_for(settings, ("clicksend",)) as clients:
        assert clients.clicksend is not None
        assert clients.clicksend.http.base_url == "https://gateway.maton.ai/clicksend"
    assert SyncSettingsResource().maton_gateway_url == "https://api.maton.ai"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CONTACT_SYNC_SOURCES", "zoho", "CONTACT_SYNC_SOURCES must be a comma-separated subset of"),
        ("CONTACT_SYNC_CRON", "every day", "CONTACT_SYNC_CRON must be a five-field cron expression"),
        ("CONTACT_SYNC_DEFAULT_PHONE_REGION", "XX", "CONTACT_SYNC_DEFAULT_PHONE_REGION must be an ISO 3166"),
        ("CONTACT_SYNC_PHONE_REGION_LINKFLOW", "China", "CONTACT_SYNC_PHONE_REGION_LINKFLOW must be an ISO"),
        ("MATON_GATEWAY_URL", "gateway.maton.ai", "MATON_GATEWAY_URL must be an http:// or https:// URL"),
        ("CONTACT_SYNC_PUSH_OVERWRITE", "zoho_crm/lead:email", "CONTACT_SYNC_PUSH_OVERWRITE must look like"),
        ("CONTACT_SYNC_CONSENT_PUSH", "maybe", "CONTACT_SYNC_CONSENT_PUSH must be one of on, off"),
    ],
)
def test_each_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith(expected)
    assert f"got {value!r}" in message
    assert "\n" not in message


def test_dotenv_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CONTACT_SYNC_PUSH=dry-run\nLINKFLOW_APP_KEY=k\nLINKFLOW_APP_SECRET=s\n")
    settings = load_settings()
    assert settings.push == "dry-run"
    assert settings.enabled_sources() == ("linkflow",)


def test_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("CONTACT_SYNC_PUSH=dry-run\n")
    monkeypatch.setenv("CONTACT_SYNC_PUSH", "off")
    assert load_settings().push == "off"


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATON_API_KEY", "maton-secret-value-1")
    monkeypatch.setenv("LINKFLOW_APP_SECRET", "linkflow-secret-value-2")
    monkeypatch.setenv("MATON_CONNECTION_ZOHO_CRM", "connection-secret-3")
    monkeypatch.setenv("CONTACT_SYNC_ALERT_WEBHOOK", "https://hooks.example/T/B/webhook-token-4")
    settings = load_settings()
    shown = repr(settings) + str(settings) + str(settings.model_dump())
    for secret in (
        "maton-secret-value-1",
        "linkflow-secret-value-2",
        "connection-secret-3",
        "webhook-token-4",
    ):
        assert secret not in shown
    assert settings.maton_connection("zoho_crm") == "connection-secret-3"
    assert settings.alert_webhook() == "https://hooks.example/T/B/webhook-token-4"
    monkeypatch.setenv("CONTACT_SYNC_ALERT_WEBHOOK", "hooks.example/T/B/webhook-token-4")
    with pytest.raises(SettingsError) as refused:  # a bad webhook is refused without being repeated
        load_settings()
    assert str(refused.value) == "CONTACT_SYNC_ALERT_WEBHOOK must be an http:// or https:// URL"


def test_sources_need_credentials_and_say_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATON_API_KEY", "k")
    monkeypatch.setenv("CONTACT_SYNC_SOURCES", "zoho_crm, linkflow,zoho_crm")
    settings = load_settings()
    assert settings.requested_sources() == ("zoho_crm", "linkflow")
    assert settings.enabled_sources() == ("zoho_crm",)
    assert settings.skipped_sources() == {
        "linkflow": "linkflow: skipped, no credentials "
        "(set LINKFLOW_APP_KEY and LINKFLOW_APP_SECRET to enable it)"
    }


def test_phone_region_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACT_SYNC_DEFAULT_PHONE_REGION", "gb")
    monkeypatch.setenv("CONTACT_SYNC_PHONE_REGION_ZOHO_BIGIN", "de")
    settings = load_settings()
    assert settings.phone_region("zoho_bigin", account_country="US") == "DE"
    assert settings.phone_region("zoho_crm", account_country="AU") == "AU"
    assert settings.phone_region("zoho_crm", account_country="nonsense") == "GB"
    assert settings.phone_region("linkflow") == "CN"
    assert settings.phone_region("clickfunnels") == "GB"


def test_push_overwrite_parses_per_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CONTACT_SYNC_PUSH_OVERWRITE", "zoho_crm/lead:first_name, title; clicksend/list_contact:company"
    )
    assert load_settings().push_overwrite() == {
        ("zoho_crm", "lead"): frozenset({"first_name", "title"}),
        ("clicksend", "list_contact"): frozenset({"company"}),
    }


def test_identity_settings_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACT_SYNC_BLOCKED_IDENTIFIERS", "Office@Acme.com, *@spam.example, +14155550100")
    monkeypatch.setenv(
        "CONTACT_SYNC_SOURCE_PRIORITY", "first_name,last_name:zoho_crm,clickfunnels;company:zoho_crm"
    )
    settings = load_settings()
    assert settings.blocked_identifiers() == (
        frozenset({"office@acme.com"}),
        ("*@spam.example",),
        frozenset({"+14155550100"}),
    )
    assert settings.source_priority()["last_name"] == ("zoho_crm", "clickfunnels")
    monkeypatch.setenv("CONTACT_SYNC_SOURCE_PRIORITY", "nickname:zoho_crm")
    with pytest.raises(SettingsError, match="CONTACT_SYNC_SOURCE_PRIORITY must look like"):
        load_settings()


def test_every_setting_reaches_the_run_through_the_dagster_resource(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The resource lists the settings one by one; a setting it forgets would silently be its default."""
    from pipelines.resources import SECRET_FIELDS, settings_resource

    nicknames = tmp_path / "nicknames.csv"
    nicknames.write_text("name,nickname\nmargaret,peggy\n", encoding="utf-8")
    mappings = tmp_path / "mappings.yaml"
    mappings.write_text("fields: [{name: plan, type: text, sources: {clicksend/list_contact: custom_1}}]\n")
    values = {
        "contact_sync_database_url": "sqlite:///elsewhere.db",
        "maton_api_key": "k",
        "maton_gateway_url": "http://127.0.0.1:1/gw",
        "linkflow_app_key": "a",
        "linkflow_app_secret": "b",
        "linkflow_base_url": "http://127.0.0.1:2",
        "contact_sync_sources": "clicksend,zoho_crm",
        "contact_sync_default_phone_region": "GB",
        "contact_sync_push": "dry-run",
        "contact_sync_cron": "0 * * * *",
        "contact_sync_maton_rps": 3.0,
        "contact_sync_linkflow_rps": 2.0,
        "contact_sync_push_overwrite": "zoho_crm/lead:title",
        "contact_sync_push_create": "zoho_crm/lead",
        "contact_sync_full_scan_hours": 6.0,
        "contact_sync_lookback_minutes": 2.5,
        "contact_sync_full_check_hours": 2.0,
        "contact_sync_blocked_identifiers": "x@example.com",
        "contact_sync_max_records_per_identifier": 9,
        "contact_sync_source_priority": "company:zoho_crm",
        "contact_sync_household_split": "off",
        "contact_sync_consent_push": "off",
        "contact_sync_nicknames": str(nicknames),
        "contact_sync_mappings": str(mappings),
        "contact_sync_freshness_minutes": 45,
        "contact_sync_alert_webhook": "https://hooks.example/T/B/token",
        "contact_sync_ui_url": "http://dagster.example:3000",
        "contact_sync_alert_after_failures": 2,
        **{f"maton_connection_{s}": f"conn-{s}" for s in SOURCES if s != "linkflow"},
        **{f"contact_sync_phone_region_{s}": "DE" for s in SOURCES},
    }
    original = load_settings(**values)
    unset = set(type(original).model_fields) - set(values)
    assert not unset, f"give the test a value for {unset}"
    for field in SECRET_FIELDS:  # secrets travel as EnvVar: the variables hold the same values
        monkeypatch.setenv(field.upper(), str(values[field]))
    carried = settings_resource(original).process_config_and_initialize().settings()
    # Only what is not a run setting stays behind: where the warehouse is (the warehouse resource's)
    # and the alerts (the sensor's, read where the code location loads).
    outside = {
        "contact_sync_database_url",
        "contact_sync_alert_webhook",
        "contact_sync_ui_url",
        "contact_sync_alert_after_failures",
    }
    for name in set(type(original).model_fields) - outside:
        mine, theirs = getattr(carried, name), getattr(original, name)
        if name in SECRET_FIELDS:
            mine, theirs = mine.get_secret_value(), theirs.get_secret_value()
        assert mine == theirs, name
