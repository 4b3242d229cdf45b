"""The Dagster webserver, started on the code location as `dagster dev` does, shows the contract's graph."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

QUERY = """
{
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        location { name }
        jobs { name }
        schedules { name cronSchedule }
        assetGroups { groupName }
        assetNodes { assetKey { path } groupName }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CONTACT_SYNC_DATABASE_URL": f"sqlite:///{tmp_path}/w.db"}
    webserver_bin = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver_bin), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"webserver exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            raise AssertionError("webserver did not answer within 90 s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stderr.close()


@pytest.mark.slow
def test_ui_graphql_shows_groups_job_and_schedule(webserver: str) -> None:
    answer = httpx.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60).json()
    assert "errors" not in answer, answer
    (repository,) = answer["data"]["repositoriesOrError"]["nodes"]
    assert repository["location"]["name"] == "contact_sync"
    assert "full_sync" in {job["name"] for job in repository["jobs"]}
    assert {"name": "full_sync_schedule", "cronSchedule": "*/15 * * * *"} in repository["schedules"]
    assert {g["groupName"] for g in repository["assetGroups"]} == {
        "extract",
        "canonical",
        "reverse_sync",
        "backfill",
    }
    keys = {tuple(node["assetKey"]["path"]): node["groupName"] for node in repository["assetNodes"]}
    assert keys[("zoho_crm", "lead")] == "extract"
    assert keys[("linkflow", "event")] == "extract"
    assert keys[("canonical", "contacts")] == "canonical"
    assert keys[("reverse_sync", "zoho_bigin", "contact")] == "reverse_sync"
