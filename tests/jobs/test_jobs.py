"""The job path end to end: an admin starts a real maintenance job over HTTP, a worker (the
server itself in embedded mode, `aggregator worker` in scaled mode) runs it, the result is
read back; visibility, cancellation and bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from storage.models import Event, Job, Notification
from tests.jobs.conftest import create_user
from tests.jobs.helpers import database, store_event, wait_for_job

pytestmark = pytest.mark.asyncio(loop_scope="session")

PURGE = "maintenance.purge_events"


async def test_purge_events_job_deletes_only_expired_published_events(job_stack):
    client, admin = job_stack.client, job_stack.admin
    async with database(job_stack.server):
        old = await store_event(f"pipeline:{uuid.uuid4()}", 40, published=True)
        pending = await store_event(f"pipeline:{uuid.uuid4()}", 40, published=False)
        recent = await store_event(f"pipeline:{uuid.uuid4()}", 2, published=True)

    response = await client.post(
        "/api/v1/jobs",
        headers=admin.headers,
        json={"kind": PURGE, "payload": {"older_than_days": 30}},
    )
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["kind"] == PURGE and started["created_by"] == admin.id

    job = await wait_for_job(client, admin.headers, started["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["deleted"] == 1 and job["result"]["older_than_days"] == 30
    assert job["progress"] == 1.0 and job["error"] is None
    assert job["started_at"] and job["completed_at"] and job["created_at"]
    async with database(job_stack.server):
        assert not await Event.exists(id=old)
        assert await Event.exists(id=pending)
        assert await Event.exists(id=recent)

    listed = await client.get("/api/v1/jobs", headers=admin.headers, params={"kind": PURGE})
    assert listed.status_code == 200
    assert started["id"] in [item["id"] for item in listed.json()["items"]]


async def _run_purge(job_stack, kind: str, older_than_days: int) -> dict:
    """An admin starts the purge over HTTP; the job as it ended."""
    client, admin = job_stack.client, job_stack.admin
    response = await client.post(
        "/api/v1/jobs",
        headers=admin.headers,
        json={"kind": kind, "payload": {"older_than_days": older_than_days}},
    )
    assert response.status_code == 202, response.text
    return await wait_for_job(client, admin.headers, response.json()["id"])


async def _finished_job(status: str, age_days: int) -> uuid.UUID:
    completed = datetime.now(UTC) - timedelta(days=age_days)
    row = await Job.create(kind=PURGE, status=status, completed_at=completed)
    return row.id


async def test_purge_jobs_deletes_only_long_finished_jobs(job_stack):
    async with database(job_stack.server):
        old_done = await _finished_job("succeeded", 40)
        old_cancelled = await _finished_job("cancelled", 40)
        recent = await _finished_job("failed", 2)
        unfinished = await Job.create(kind=PURGE, status="running", attempts=3)
    job = await _run_purge(job_stack, "maintenance.purge_jobs", older_than_days=30)
    assert job["status"] == "succeeded" and job["result"]["deleted"] == 2, job
    async with database(job_stack.server):
        assert not await Job.exists(id=old_done)
        assert not await Job.exists(id=old_cancelled)
        assert await Job.exists(id=recent)
        assert await Job.exists(id=unfinished.id)


async def test_purge_notifications_deletes_only_old_ones_read_or_not(job_stack):
    owner = uuid.UUID(job_stack.admin.id)

    async def notification(age_days: int, read: bool) -> uuid.UUID:
        row = await Notification.create(
            user_id=owner, type="test", title="t", read_at=datetime.now(UTC) if read else None
        )
        created = datetime.now(UTC) - timedelta(days=age_days)
        await Notification.filter(id=row.id).update(created_at=created)
        return row.id

    async with database(job_stack.server):
        old_read, old_unread = await notification(100, True), await notification(100, False)
        recent = await notification(5, False)
    job = await _run_purge(job_stack, "maintenance.purge_notifications", older_than_days=90)
    assert job["status"] == "succeeded" and job["result"]["deleted"] == 2, job
    async with database(job_stack.server):
        assert not await Notification.exists(id=old_read)
        assert not await Notification.exists(id=old_unread)
        assert await Notification.exists(id=recent)


async def test_jobs_are_visible_to_their_creator_and_admins_only(job_stack):
    client, admin = job_stack.client, job_stack.admin
    viewer = await create_user(client, admin, "viewer")
    other = await create_user(client, admin, "editor")
    async with database(job_stack.server):
        own = await Job.create(
            kind=PURGE, status="succeeded", created_by_id=uuid.UUID(viewer.id), result={}
        )
    admins = await client.post("/api/v1/jobs", headers=admin.headers, json={"kind": PURGE})
    assert admins.status_code == 202, admins.text
    admin_job = admins.json()["id"]

    mine = await client.get("/api/v1/jobs", headers=viewer.headers)
    assert [item["id"] for item in mine.json()["items"]] == [str(own.id)]
    assert mine.json()["total"] == 1
    assert (await client.get(f"/api/v1/jobs/{own.id}", headers=viewer.headers)).status_code == 200
    assert (
        await client.get(f"/api/v1/jobs/{admin_job}", headers=viewer.headers)
    ).status_code == 404
    assert (await client.get(f"/api/v1/jobs/{own.id}", headers=other.headers)).status_code == 404
    cancel = await client.post(f"/api/v1/jobs/{own.id}/cancel", headers=other.headers)
    assert cancel.status_code == 404
    assert (await client.get(f"/api/v1/jobs/{own.id}", headers=admin.headers)).status_code == 200
    everything = await client.get("/api/v1/jobs", headers=admin.headers, params={"limit": 500})
    ids = {item["id"] for item in everything.json()["items"]}
    assert {str(own.id), admin_job} <= ids


async def test_a_finished_job_cannot_be_cancelled(job_stack):
    client, admin = job_stack.client, job_stack.admin
    started = await client.post("/api/v1/jobs", headers=admin.headers, json={"kind": PURGE})
    job = await wait_for_job(client, admin.headers, started.json()["id"])
    response = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=admin.headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"kind": "no.such.kind"}, "/kind"),
        ({"kind": "notifications.dispatch"}, "/kind"),  # exists, but not startable by users
        ({"kind": PURGE, "payload": {"older_than_days": 0}}, "/payload/older_than_days"),
        ({"kind": PURGE, "payload": {"surprise": 1}}, "/payload/surprise"),
        ({"kind": PURGE, "extra": True}, "/extra"),
        ({"payload": {}}, "/kind"),
    ],
)
async def test_starting_a_job_with_bad_input_is_422(job_stack, body, pointer):
    response = await job_stack.client.post(
        "/api/v1/jobs", headers=job_stack.admin.headers, json=body
    )
    assert response.status_code == 422, response.text
    assert pointer in [error["pointer"] for error in response.json()["errors"]]


async def test_job_routes_reject_bad_requests(job_stack):
    client, admin = job_stack.client, job_stack.admin
    editor = await create_user(client, admin, "editor")
    assert (await client.post("/api/v1/jobs", json={"kind": PURGE})).status_code == 401
    forbidden = await client.post("/api/v1/jobs", headers=editor.headers, json={"kind": PURGE})
    assert forbidden.status_code == 403
    malformed = await client.post(
        "/api/v1/jobs", headers={**admin.headers, "content-type": "application/json"}, content=b"{"
    )
    assert malformed.status_code == 400
    assert (await client.get("/api/v1/jobs/not-a-uuid", headers=admin.headers)).status_code == 404
    unknown = f"/api/v1/jobs/{uuid.uuid4()}"
    assert (await client.get(unknown, headers=admin.headers)).status_code == 404
    assert (await client.post(f"{unknown}/cancel", headers=admin.headers)).status_code == 404
    bad_list = await client.get("/api/v1/jobs", headers=admin.headers, params={"status": "done"})
    assert bad_list.status_code == 422
    bad_sort = await client.get("/api/v1/jobs", headers=admin.headers, params={"sort": "payload"})
    assert bad_sort.status_code == 422
