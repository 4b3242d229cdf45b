"""The ``/_admin`` endpoints: the same controls as the Python API, over HTTP, for out-of-process callers."""

import httpx


def admin(emulator) -> httpx.Client:
    return httpx.Client(base_url=emulator.base_url + "/_admin", timeout=10)


def test_health_and_counters(emulator, maton):
    with admin(emulator) as client:
        assert client.get("/health").json()["status"] == "ok"
        maton.get("/zoho-crm/crm/v8/org")
        maton.get("/zoho-crm/crm/v8/org")
        counters = client.get("/counters").json()
        assert counters["total"] == 2
        assert counters["counts"] == [{"app": "zoho_crm", "endpoint": "GET /zoho-crm/crm/v8/org", "count": 2}]
        client.post("/counters/reset")
        assert client.get("/counters").json()["total"] == 0
    assert emulator.total_requests() == 0


def test_faults_and_budget_can_be_set_over_http(emulator, maton):
    with admin(emulator) as client:
        answer = client.post("/faults", json={"error_rate_503": 1.0, "apps": ["clicksend"], "maton_rps": 50})
        assert answer.json()["faults"]["apps"] == ["clicksend"]
        assert answer.json()["maton_rps"] == 50
        assert maton.get("/clicksend/v3/account").status_code == 503
        assert emulator.maton_rps == 50
        assert client.post("/faults", json={"error_rate_503": 2}).status_code == 400
        assert client.post("/faults", json={"typo": 1}).status_code == 400


def test_mutate_writes_and_truth_over_http(emulator, maton):
    with admin(emulator) as client:
        summary = client.post("/mutate", json={"seed": 2, "new": 3, "updated": 2}).json()
        assert summary["new_people"] == 3
        contact_id = next(iter(emulator.dataset.tables["zoho_crm/contact"]))
        maton.put("/zoho-crm/crm/v8/Contacts", json={"data": [{"id": contact_id, "Title": "CEO"}]})
        writes = client.get("/writes").json()["writes"]
        assert [(w["app"], w["method"], w["record_id"], w["body"]) for w in writes] == [
            ("zoho_crm", "PUT", contact_id, {"id": contact_id, "Title": "CEO"})
        ]
        emulator.clear_writes()
        assert client.get("/writes").json() == {"writes": []}
        truth = client.get("/truth").json()
        assert len(truth) == len(emulator.truth())
        assert {"source", "object", "source_id", "person_id"} == set(truth[0])
        assert client.post("/mutate", json={"people": 3}).status_code == 400


def test_admin_paths_are_not_counted_and_unknown_ones_are_404(emulator):
    with admin(emulator) as client:
        assert client.get("/nothing").status_code == 404
    assert emulator.total_requests() == 0


def test_an_edit_by_hand_is_stamped_as_each_api_shows_an_outside_edit(emulator, maton, linkflow):
    """``POST /_admin/edit``: the record changes as a person's edit in the vendor's UI shows, not as
    a client's write: Zoho names a colleague as Modified_By (the API's own user is the admin that
    ``/users?type=CurrentUser`` names), Linkflow moves to the next ``ver``; nothing enters the write log."""
    lead_id = next(iter(emulator.dataset.tables["zoho_crm/lead"]))
    current = maton.get("/zoho-crm/crm/v8/users", params={"type": "CurrentUser"}).json()["users"]
    assert [user["id"] for user in current] == [
        emulator.dataset.tables["zoho_crm/lead"][lead_id]["Owner"]["id"]
    ]
    ours = maton.put("/zoho-crm/crm/v8/Leads", json={"data": [{"id": lead_id, "City": "Austin"}]}).json()
    assert ours["data"][0]["details"]["Modified_By"]["id"] == current[0]["id"]
    contact_id = next(iter(emulator.dataset.tables["linkflow/contact"]))
    version = linkflow.get("/v2/contacts_bulk", params={"ids": contact_id}).json()[0]["ver"]
    emulator.clear_writes()
    with admin(emulator) as client:
        edited = client.post(
            "/edit", json={"table": "zoho_crm/lead", "id": lead_id, "fields": {"Last_Name": "Hand"}}
        ).json()
        assert edited["Last_Name"] == "Hand"
        assert edited["Full_Name"].endswith("Hand")
        assert edited["Modified_By"]["id"] != current[0]["id"]
        assert edited["Modified_Time"] >= ours["data"][0]["details"]["Modified_Time"]
        answer = client.post(
            "/edit",
            json={
                "table": "linkflow/contact",
                "id": contact_id,
                "fields": {"title": "Chef"},
                "at": "2030-01-01T00:00:00+00:00",
            },
        ).json()
        assert (answer["ver"], answer["title"], answer["lastUpdated"]) == (
            version + 1,
            "Chef",
            "2030-01-01 08:00:00",
        )
        assert (
            client.post(
                "/edit", json={"table": "zoho_crm/lead", "id": lead_id, "fields": {"Modified_By": 1}}
            ).status_code
            == 400
        )
        assert (
            client.post("/edit", json={"table": "nowhere/contact", "id": 1, "fields": {}}).status_code == 400
        )
    assert emulator.writes() == []
