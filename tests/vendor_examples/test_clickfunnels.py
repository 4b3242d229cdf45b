"""ClickFunnels' published examples through the product's ClickFunnels client (Maton ``/clickfunnels``).

Discovery reads ``/teams`` then ``/teams/{id}/workspaces`` (no workspace is configured), then the
contacts of each workspace, newest first, into the warehouse.
"""

from datetime import UTC, datetime

import pytest

from connectors.errors import AuthError, FatalError, NotFoundError
from tests.vendor_examples.catalogue import load
from tests.vendor_examples.conftest import Harness
from tests.vendor_examples.server import Reply

API = "/clickfunnels/api/v2"


def serve(harness: Harness, workspaces: str, contacts: str) -> None:
    harness.server.route("GET", f"{API}/teams", Reply(200, load("cf_teams")))
    harness.server.route("GET", f"{API}/teams/{{team_id}}/workspaces", Reply(200, load(workspaces)))
    harness.server.route("GET", f"{API}/workspaces/{{workspace_id}}/contacts", Reply(200, load(contacts)))


@pytest.mark.parametrize(
    ("contacts", "record_id", "expected", "updated_at"),
    [
        (
            "cf_contacts_spec",
            "24359",
            {
                "email": "jane.doe@example.com",
                "phone": "+18005550199",
                "first_name": "Jane",
                "last_name": "Doe",
            },
            datetime(2026, 1, 9, 15, 28, 8, 75000, tzinfo=UTC),
        ),
        (
            "cf_contacts_seed",
            "1087091674",
            {"email": "user@example.com", "phone": None, "first_name": "张三", "last_name": "李"},
            datetime(2026, 2, 7, 9, 28, 52, 777000, tzinfo=UTC),
        ),
    ],
)
def test_contacts_examples_land_as_golden_contacts(harness, contacts, record_id, expected, updated_at):
    """The seed's team and workspace lead to workspace 435231; either published contacts list is read
    newest first, stored with its ``updated_at`` (``Z``, milliseconds) as the modified time, and the
    workspace's watermark is that time to the second. A second run reads the page again and changes
    nothing (the list has no updated-since filter; the scan stops at the watermark)."""
    serve(harness, "cf_workspaces_seed", contacts)
    with harness.clients("clickfunnels") as clients:
        first = harness.extract("clickfunnels/contact", clients)
        second = harness.extract("clickfunnels/contact", clients)
    harness.resolve()

    raw = harness.raw("clickfunnels/contact")
    assert list(raw) == [record_id]
    assert raw[record_id].payload == load(contacts)[0]
    assert raw[record_id].modified_at == updated_at
    watermark = updated_at.replace(microsecond=0).isoformat()
    # The scan was newest first: what topped the workspace as it began is the watermark too.
    marks = {"435231": watermark}
    assert harness.cursor("clickfunnels/contact") == {"updated_at": marks, "newest_at_start": marks}
    assert (first.counts.inserted, second.counts.unchanged, second.counts.inserted) == (1, 1, 0)
    listing = harness.server.requests("GET", f"{API}/workspaces/435231/contacts")
    assert [r.query for r in listing] == [{"sort_property": "updated_at", "sort_order": "desc"}] * 2
    golden = harness.golden("clickfunnels", record_id)
    assert {k: golden[k] for k in expected} == expected


def test_a_workspace_the_example_lists_twice_is_read_once(harness):
    """Issue 18, ClickFunnels row. The spec's ``GET /teams/{team_id}/workspaces`` example lists
    workspace 42000 twice (public ids EYNOMX and SuvKfc). The workspace must be read once: one
    contacts scan, one watermark. Today the product reads it twice (harmless, rows are upserted)."""
    serve(harness, "cf_workspaces_spec", "cf_contacts_spec")
    with harness.clients("clickfunnels") as clients:
        harness.extract("clickfunnels/contact", clients)
        assert clients.clickfunnels is not None
        workspaces = clients.clickfunnels.workspace_ids()

    assert list(harness.raw("clickfunnels/contact")) == ["24359"]
    marks = {"42000": "2026-01-09T15:28:08+00:00"}
    assert harness.cursor("clickfunnels/contact") == {"updated_at": marks, "newest_at_start": marks}
    scans = harness.server.requests("GET", f"{API}/workspaces/42000/contacts")
    assert len(scans) == 1, f"workspace 42000 was scanned {len(scans)} times"
    assert workspaces == ["42000"]


def test_write_examples_are_read_as_one_successful_record_each(harness):
    """Upsert answers the contact (200 updated, 201 created: the spec shows the same example for
    both), update answers it (200), delete answers 204 without a body (the spec's ``204: No
    Content``; seed 000 line 145: "成功时返回HTTP 204")."""
    contact = load("cf_contact")
    server = harness.server
    with harness.clients("clickfunnels") as clients:
        cf = clients.clickfunnels
        assert cf is not None
        server.route("POST", f"{API}/workspaces/{{id}}/contacts/upsert", Reply(200, contact))
        updated = cf.upsert_contact("435231", {"email_address": "jane.doe@example.com", "first_name": "Jane"})
        server.route("POST", f"{API}/workspaces/{{id}}/contacts/upsert", Reply(201, contact))
        created = cf.upsert_contact("435231", {"email_address": "jane.doe@example.com"})
        server.route("PUT", f"{API}/contacts/{{id}}", Reply(200, contact))
        changed = cf.update_contact("24359", {"last_name": "Doe"})
        server.route("DELETE", f"{API}/contacts/{{id}}", Reply(204))
        deleted = cf.delete_contact("24359")

    assert (updated.ok, updated.record_id, updated.action) == (True, "24359", None)
    assert (created.ok, created.record_id, created.action) == (True, "24359", "insert")
    assert (changed.ok, changed.record_id, changed.details["updated_at"]) == (
        True,
        "24359",
        "2026-01-09T15:28:08.075Z",
    )
    assert (deleted.ok, deleted.record_id) == (True, "24359")
    upsert = server.requests("POST", f"{API}/workspaces/435231/contacts/upsert")[0]
    assert upsert.body == {"contact": {"email_address": "jane.doe@example.com", "first_name": "Jane"}}
    assert server.requests("PUT", f"{API}/contacts/24359")[0].body == {"contact": {"last_name": "Doe"}}


@pytest.mark.parametrize(
    ("route", "path", "status", "example", "error"),
    [
        ("/teams/{team_id}/workspaces", "/teams/412840/workspaces", 401, "cf_error_unauthorized", AuthError),
        ("/teams/{team_id}/workspaces", "/teams/412840/workspaces", 404, "cf_error_not_found", NotFoundError),
        ("/workspaces/{id}/contacts", "/workspaces/435231/contacts", 401, "cf_error_unauthorized", AuthError),
        (
            "/workspaces/{id}/contacts",
            "/workspaces/435231/contacts",
            404,
            "cf_error_not_found",
            NotFoundError,
        ),
        (
            "/workspaces/{id}/contacts",
            "/workspaces/435231/contacts",
            422,
            "cf_error_unprocessable",
            FatalError,
        ),
    ],
)
def test_error_examples_stop_a_read_with_the_vendors_words(harness, route, path, status, example, error):
    """A refused read fails the stream at once (a 4xx is not retried) with the vendor's message."""
    serve(harness, "cf_workspaces_seed", "cf_contacts_spec")
    harness.server.route("GET", f"{API}{route}", Reply(status, load(example)))
    with harness.clients("clickfunnels") as clients, pytest.raises(error) as failure:
        harness.extract("clickfunnels/contact", clients)
    assert type(failure.value) is error
    assert (failure.value.status, failure.value.message) == (status, load(example)["error"])
    assert len(harness.server.requests("GET", f"{API}{path}")) == 1


@pytest.mark.parametrize(
    ("method", "route", "status", "example", "code", "gone"),
    [
        ("POST", "/workspaces/{id}/contacts/upsert", 400, "cf_error_bad_request", "HTTP_400", False),
        ("POST", "/workspaces/{id}/contacts/upsert", 404, "cf_error_not_found", "HTTP_404", False),
        ("PUT", "/contacts/{id}", 400, "cf_error_bad_request", "HTTP_400", False),
        ("PUT", "/contacts/{id}", 404, "cf_error_not_found", "HTTP_404", True),
        ("DELETE", "/contacts/{id}", 404, "cf_error_not_found", "HTTP_404", True),
    ],
)
def test_refused_write_examples_become_that_records_failure(
    harness, method, route, status, example, code, gone
):
    """A refused write is that record's outcome, with the vendor's message. A 404 on an addressed
    contact means it is gone; a 404 on an upsert names a missing workspace, not the record."""
    harness.server.route(method, f"{API}{route}", Reply(status, load(example)))
    with harness.clients("clickfunnels") as clients:
        cf = clients.clickfunnels
        assert cf is not None
        if method == "POST":
            result = cf.upsert_contact("435231", {"email_address": "jane.doe@example.com"})
        elif method == "PUT":
            result = cf.update_contact("24359", {"first_name": "Jane"})
        else:
            result = cf.delete_contact("24359")
    assert (result.ok, result.code, result.message, result.gone) == (
        False,
        code,
        load(example)["error"],
        gone,
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_unauthorized_write_example_fails_the_call(harness, method):
    """A bad key is not one record's problem: the write raises, naming the vendor's message."""
    routes = {"POST": "/workspaces/{id}/contacts/upsert", "PUT": "/contacts/{id}", "DELETE": "/contacts/{id}"}
    harness.server.route(method, f"{API}{routes[method]}", Reply(401, load("cf_error_unauthorized")))
    with harness.clients("clickfunnels") as clients:
        cf = clients.clickfunnels
        assert cf is not None
        writes = {
            "POST": lambda: cf.upsert_contact("435231", {"email_address": "jane.doe@example.com"}),
            "PUT": lambda: cf.update_contact("24359", {"first_name": "Jane"}),
            "DELETE": lambda: cf.delete_contact("24359"),
        }
        with pytest.raises(AuthError, match="API key missing or invalid"):
            writes[method]()
