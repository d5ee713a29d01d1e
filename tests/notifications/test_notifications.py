"""Events become notifications: a failed pipeline run emails its owner through a real SMTP
server and shows up in the owner's list; preferences, unread counts, read marks, privacy."""

from __future__ import annotations

import uuid

import pytest

from app.notifications.jobs import dispatch_job_id, email_job_id
from tests.jobs.conftest import create_user
from tests.jobs.helpers import wait_for, wait_for_job
from tests.notifications.helpers import failed_run, notification_about, notifications

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_failed_run_emails_its_owner_once(stack):
    owner = await create_user(stack.client, stack.admin, "editor")
    name = f"nightly-sales-{uuid.uuid4().hex[:6]}"
    execution_id = await failed_run(stack.client, owner, name)

    messages = await stack.inbox.arrived(owner.email)
    message = messages[0]
    assert message["To"] == owner.email
    assert message["Subject"] == f"Pipeline \u201c{name}\u201d failed"
    text = message.get_body(("plain",)).get_content()
    assert execution_id in text and "failed" in text
    assert name in message.get_body(("html",)).get_content()

    notification = await notification_about(stack.client, owner, execution_id)
    assert notification["type"] == "execution.failed" and notification["read"] is False
    assert notification["title"] == message["Subject"]
    assert sorted(notification["data"]["channels"]) == ["email", "websocket"]
    # One event, one notification and one email, however many processes saw the event.
    event_id = uuid.UUID(notification["event_id"])
    dispatch = await wait_for_job(stack.client, stack.admin.headers, str(dispatch_job_id(event_id)))
    assert dispatch["status"] == "succeeded"
    assert dispatch["result"]["notifications"] == [notification["id"]]
    sent = await wait_for_job(
        stack.client, stack.admin.headers, str(email_job_id(uuid.UUID(notification["id"])))
    )
    assert sent["status"] == "succeeded" and sent["result"] == {"to": owner.email}
    listed = await notifications(stack.client, owner, type="execution.failed")
    assert [n["data"]["entity_id"] for n in listed["items"]].count(execution_id) == 1
    assert len(stack.inbox.to(owner.email)) == 1


async def test_an_admin_changing_your_role_emails_you(stack):
    user = await create_user(stack.client, stack.admin, "viewer")
    changed = await stack.client.patch(
        f"/api/v1/users/{user.id}", headers=stack.admin.headers, json={"role": "editor"}
    )
    assert changed.status_code == 200, changed.text
    [message] = await stack.inbox.arrived(user.email)
    assert message["Subject"] == "Your account was changed"
    assert "role" in message.get_body(("plain",)).get_content()
    assert "editor" in message.get_body(("plain",)).get_content()


async def test_email_switched_off_means_no_email(stack):
    owner = await create_user(stack.client, stack.admin, "editor")
    switched = await stack.client.put(
        "/api/v1/notifications/preferences",
        headers=owner.headers,
        json={
            "preferences": [
                {"event_type": "execution.failed", "channel": "email", "enabled": False}
            ]
        },
    )
    assert switched.status_code == 200, switched.text
    choice = [
        p
        for p in switched.json()["preferences"]
        if (p["event_type"], p["channel"]) == ("execution.failed", "email")
    ]
    assert choice == [
        {"event_type": "execution.failed", "channel": "email", "enabled": False, "default": True}
    ]
    execution_id = await failed_run(stack.client, owner, f"quiet-{uuid.uuid4().hex[:6]}")
    notification = await notification_about(stack.client, owner, execution_id)
    assert notification["data"]["channels"] == ["websocket"]
    # A second owner with the default still gets mail, and the first one still none.
    other = await create_user(stack.client, stack.admin, "editor")
    await failed_run(stack.client, other, f"loud-{uuid.uuid4().hex[:6]}")
    await stack.inbox.arrived(other.email)
    assert stack.inbox.to(owner.email) == []


async def test_unread_counts_and_read_marks(stack):
    admin = await create_user(stack.client, stack.admin, "admin")
    for _ in range(3):  # each finished job the admin started notifies them in-app
        started = await stack.client.post(
            "/api/v1/jobs", headers=admin.headers, json={"kind": "maintenance.purge_events"}
        )
        assert started.status_code == 202, started.text
    unread = await wait_for(
        lambda: notifications(stack.client, admin, unread="true"), lambda page: page["total"] == 3
    )
    assert unread["unread_count"] == 3
    assert all(n["type"] == "job.succeeded" and not n["read"] for n in unread["items"])
    assert all(n["data"]["channels"] == ["websocket"] for n in unread["items"])  # no email
    first = unread["items"][0]["id"]

    read = await stack.client.post(f"/api/v1/notifications/{first}/read", headers=admin.headers)
    assert read.status_code == 200 and read.json()["read"] is True and read.json()["read_at"]
    again = await stack.client.post(f"/api/v1/notifications/{first}/read", headers=admin.headers)
    assert again.json()["read_at"] == read.json()["read_at"]
    assert (await notifications(stack.client, admin))["unread_count"] == 2
    assert [
        n["id"] for n in (await notifications(stack.client, admin, unread="false"))["items"]
    ] == [first]

    everything = await stack.client.post("/api/v1/notifications/read-all", headers=admin.headers)
    assert everything.json() == {"updated": 2, "unread_count": 0}
    page = await notifications(stack.client, admin, limit=2)
    assert page["total"] == 3 and len(page["items"]) == 2 and page["unread_count"] == 0
    assert (await notifications(stack.client, admin, unread="true"))["items"] == []


async def test_other_users_notifications_are_not_found(stack):
    owner = await create_user(stack.client, stack.admin, "editor")
    stranger = await create_user(stack.client, stack.admin, "admin")
    execution_id = await failed_run(stack.client, owner, f"private-{uuid.uuid4().hex[:6]}")
    notification = await notification_about(stack.client, owner, execution_id)
    response = await stack.client.post(
        f"/api/v1/notifications/{notification['id']}/read", headers=stranger.headers
    )
    assert response.status_code == 404
    assert all(
        n["data"].get("entity_id") != execution_id
        for n in (await notifications(stack.client, stranger))["items"]
    )
    assert (await notifications(stack.client, owner))["unread_count"] >= 1


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (
            {"preferences": [{"event_type": "nope", "channel": "email", "enabled": True}]},
            "/preferences/0/event_type",
        ),
        (
            {"preferences": [{"event_type": "job.failed", "channel": "sms", "enabled": True}]},
            "/preferences/0/channel",
        ),
        (
            {"preferences": [{"event_type": "job.failed", "channel": "email", "enabled": "yes"}]},
            "/preferences/0/enabled",
        ),
        (
            {"preferences": [{"event_type": "job.failed", "channel": "email"}]},
            "/preferences/0/enabled",
        ),
        ({"preferences": []}, "/preferences"),
        ({"preferences": [], "extra": 1}, "/extra"),
    ],
)
async def test_bad_preferences_are_422(stack, body, pointer):
    response = await stack.client.put(
        "/api/v1/notifications/preferences", headers=stack.admin.headers, json=body
    )
    assert response.status_code == 422, response.text
    assert pointer in [error["pointer"] for error in response.json()["errors"]]


async def test_notification_routes_reject_bad_requests(stack):
    client, headers = stack.client, stack.admin.headers
    assert (await client.get("/api/v1/notifications")).status_code == 401
    assert (
        await client.get("/api/v1/notifications", headers=headers, params={"unread": "maybe"})
    ).status_code == 422
    assert (
        await client.get("/api/v1/notifications", headers=headers, params={"limit": 0})
    ).status_code == 422
    assert (
        await client.post("/api/v1/notifications/not-a-uuid/read", headers=headers)
    ).status_code == 404
    assert (
        await client.post(f"/api/v1/notifications/{uuid.uuid4()}/read", headers=headers)
    ).status_code == 404
    malformed = await client.put(
        "/api/v1/notifications/preferences",
        headers={**headers, "content-type": "application/json"},
        content=b"{",
    )
    assert malformed.status_code == 400
    prefs = await client.get("/api/v1/notifications/preferences", headers=headers)
    assert prefs.status_code == 200 and prefs.json()["email_available"] is True


async def test_without_smtp_the_email_channel_is_off(client, admin):
    prefs = await client.get("/api/v1/notifications/preferences", headers=admin.headers)
    assert prefs.status_code == 200
    assert prefs.json()["email_available"] is False
    assert {
        "event_type": "execution.failed",
        "channel": "email",
        "enabled": True,
        "default": True,
    } in prefs.json()["preferences"]


async def test_the_routes_are_documented(client):
    paths = (await client.get("/docs/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/notifications",
        "/api/v1/notifications/{notification_id}/read",
        "/api/v1/notifications/read-all",
        "/api/v1/notifications/preferences",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/cancel",
    ):
        assert path in paths, path
