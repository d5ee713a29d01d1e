from __future__ import annotations

import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller

from tests.conftest import Account
from tests.jobs.conftest import register_admin
from tests.jobs.helpers import isolated_queue, job_workers, wait_for
from tests.servers import MODE, ServerProcess, free_port


@dataclass
class Inbox:
    """A real SMTP server's mailbox: what the platform delivered, as parsed messages."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for rcpts, message in self.messages if address in rcpts]

    async def arrived(self, address: str) -> list[EmailMessage]:
        """Waits for mail to `address` (delivery is a background job)."""

        async def mail() -> list[EmailMessage]:
            return self.to(address)

        return await wait_for(mail, bool)


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@dataclass
class NotifyStack:
    server: ServerProcess
    client: httpx.AsyncClient
    admin: Account
    inbox: Inbox


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(server_factory, smtp) -> AsyncIterator[NotifyStack]:
    inbox, port = smtp
    # Scaled: two web processes both see every event; each must still notify once.
    server = await server_factory(
        workers=2 if MODE == "scaled" else 1,
        SMTP_URL=f"smtp://127.0.0.1:{port}?starttls=0",
        JOB_RETRY_BACKOFF_SECONDS="0.2",
        **isolated_queue(),
    )
    async with (
        job_workers(server),
        httpx.AsyncClient(base_url=server.base_url, timeout=30) as client,
    ):
        yield NotifyStack(server, client, await register_admin(client), inbox)
    assert not server.server_errors(), "\n".join(server.server_errors())
