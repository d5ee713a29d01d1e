"""Email is sent by a job that retries: mail to an SMTP server that is down at first still
arrives once the server is up."""

from __future__ import annotations

import uuid

import httpx
import pytest
from aiosmtpd.controller import Controller

from app.notifications.jobs import email_job_id
from tests.jobs.conftest import create_user, register_admin
from tests.jobs.helpers import isolated_queue, job_workers, wait_for, wait_for_job
from tests.notifications.conftest import Inbox
from tests.notifications.helpers import failed_run, notification_about
from tests.servers import free_port

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_email_is_retried_until_the_smtp_server_answers(server_factory):
    port = free_port()  # nothing listens here yet
    server = await server_factory(
        SMTP_URL=f"smtp://127.0.0.1:{port}", JOB_RETRY_BACKOFF_SECONDS="1", **isolated_queue()
    )
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    async with (
        job_workers(server),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
    ):
        admin = await register_admin(client)
        owner = await create_user(client, admin, "editor")
        execution_id = await failed_run(client, owner, f"retry-{uuid.uuid4().hex[:6]}")
        notification = await notification_about(client, owner, execution_id)
        job_url = f"/api/v1/jobs/{email_job_id(uuid.UUID(notification['id']))}"

        async def email_job() -> dict:
            response = await client.get(job_url, headers=admin.headers)
            return response.json() if response.status_code == 200 else {}

        first_try = await wait_for(email_job, lambda job: bool(job.get("error")))
        assert first_try["status"] in {"queued", "running"}, first_try  # failed, will retry
        controller.start()
        try:
            sent = await wait_for_job(client, admin.headers, first_try["id"], within=60)
        finally:
            controller.stop()
    assert sent["status"] == "succeeded" and sent["attempts"] >= 2, sent
    assert sent["error"] is None
    [message] = inbox.to(owner.email)
    assert message["Subject"] == notification["title"]
