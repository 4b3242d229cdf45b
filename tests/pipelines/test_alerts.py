"""Alerts: Dagster's run-failure sensor, evaluated tick by tick on the instance that holds real failed
runs, posts Slack-compatible JSON to a real local HTTP receiver."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import dagster as dg
import pytest

from connectors.emulator import Emulator
from pipelines.alerts import SENSOR_NAME, AlertDeliveryError, post_alert
from pipelines.definitions import build_definitions
from pipelines.runner import SyncReport, run_sync, run_undo
from pipelines.settings import Settings, load_settings
from tests.loopback import serving
from tests.pipelines.conftest import settings_for

UI = "http://dagster.example:3000"
ROTATED = "rotated-key-0123456789"


@contextmanager
def receiver(status: int = 200) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook on a free loopback port: yields its URL (with a token in the path, as Slack's carry)
    and the list of JSON bodies it is sent."""
    posts: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        received: ClassVar[list[dict[str, Any]]] = posts

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            assert self.headers["Content-Type"] == "application/json"
            assert self.path == "/services/T000/B000/hook-token-xyz"
            self.received.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: object) -> None:
            pass

    with serving(Hook) as base:
        yield f"{base}/services/T000/B000/hook-token-xyz", posts


class Sensor:
    """The alert sensor of ``settings``' definitions, ticked as the daemon ticks it: each tick reads
    the run failures stored after its cursor."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance) -> None:
        self.sensor = build_definitions(settings).resolve_sensor_def(SENSOR_NAME)
        self.instance = instance
        self.cursor: str | None = None
        self.tick()  # the first tick only sets the cursor, as on a sensor's first start

    def tick(self) -> None:
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor) as context:
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor


def test_a_failing_stream_is_announced_when_it_starts_and_after_n_runs_in_a_row(
    emulator: Emulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with receiver() as (url, posts), dg.DagsterInstance.ephemeral() as instance:
        settings = settings_for(
            emulator,
            sqlite_url,
            contact_sync_sources="zoho_bigin",
            contact_sync_alert_webhook=url,
            contact_sync_ui_url=UI,
            contact_sync_alert_after_failures=3,
        )
        sensor = Sensor(settings, instance)
        monkeypatch.setenv("MATON_API_KEY", ROTATED)  # runs read it from the environment: it is rejected

        def failed_run() -> SyncReport:
            report = run_sync(settings, instance=instance)
            assert not report.success
            sensor.tick()
            return report

        first = failed_run()
        assert len(posts) == 1
        text = posts[0]["text"]
        assert set(posts[0]) == {"text"}
        assert text.splitlines() == [
            f"contact-sync: full_sync run {first.run_id} failed (the run went on without the streams below)",
            "• zoho_bigin/contact: MATON_API_KEY rejected (401 Invalid or expired API key): create a new key "
            "at https://maton.ai/settings and set MATON_API_KEY to it",
            f"{UI}/runs/{first.run_id}",
        ]

        failed_run()  # the same stream failing again: already announced
        assert len(posts) == 1

        third = failed_run()
        assert len(posts) == 2
        lines = posts[1]["text"].splitlines()
        assert lines[0].startswith(f"contact-sync: full_sync run {third.run_id} failed (the run went on")
        assert lines[1].startswith("• zoho_bigin/contact: MATON_API_KEY rejected (401")
        assert " (failed in 3 consecutive runs, since 20" in lines[1]
        for post in posts:  # no credential, and not the webhook's own token
            body = json.dumps(post)
            for secret in (ROTATED, emulator.env()["MATON_API_KEY"], "hook-token-xyz"):
                assert secret not in body


def test_a_failed_undo_is_announced_at_once_and_nothing_without_a_webhook(sqlite_url: str) -> None:
    with receiver() as (url, posts), dg.DagsterInstance.ephemeral() as instance:
        settings = load_settings(contact_sync_database_url=sqlite_url, contact_sync_alert_webhook=url)
        sensor = Sensor(settings, instance)
        report = run_undo(settings, "no-such-run", instance=instance)
        assert not report.success
        sensor.tick()
        assert [post["text"] for post in posts] == [
            f"contact-sync: undo_push run {report.run_id} failed\n"
            "• undo: the ledger has no run no-such-run; see push_ledger.run_id"
        ]
        sensor.tick()  # each failure once
        assert len(posts) == 1
    unset = build_definitions(load_settings(contact_sync_database_url=sqlite_url))
    assert [sensor.name for sensor in unset.sensors or []] == []


def test_a_webhook_that_refuses_is_an_error_naming_neither_its_url_nor_the_text() -> None:
    with receiver(status=500) as (url, posts):
        with pytest.raises(AlertDeliveryError) as refused:
            post_alert(url, "contact-sync: full_sync run r failed")
        assert str(refused.value) == "the alert webhook answered 500"
        assert len(posts) == 1
