"""Email over SMTP (aiosmtplib), configured by one URL.

    SMTP_URL=smtp://user:pass@mail.example.com:587?starttls=1   STARTTLS required
    SMTP_URL=smtp://mail.example.com:25?starttls=0              plain (a local relay)
    SMTP_URL=smtp://mail.example.com                            STARTTLS if offered
    SMTP_URL=smtps://user:pass@mail.example.com:465             TLS from the start

No SMTP_URL: the email channel is off (preferences report `email_available: false`).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # smtps: TLS from the first byte
    start_tls: bool | None  # None: upgrade when the server offers it

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:port?starttls=1")
        flag = parse_qs(parts.query).get("starttls", [""])[0].lower()
        if flag and flag not in _TRUE | _FALSE:
            raise ValueError("SMTP_URL starttls must be 1 or 0")
        use_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if use_tls else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=None if use_tls or not flag else flag in _TRUE,
        )


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str


class Mailer:
    def __init__(self, config: SmtpConfig, sender: str, timeout: float):
        self.config = config
        self.sender = sender
        self.timeout = timeout

    async def send(self, email: Email) -> None:
        """Raises aiosmtplib.SMTPException / OSError on failure (the job retries)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email.to
        message["Subject"] = email.subject
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        config = self.config
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.use_tls,
            start_tls=config.start_tls,
            timeout=self.timeout,
        )


def email_configured(settings) -> bool:
    """Whether the email channel is on; a malformed SMTP_URL stops start-up here."""
    if not settings.SMTP_URL:
        return False
    SmtpConfig.from_url(settings.SMTP_URL)
    return True


def mailer_from_settings(settings) -> Mailer | None:
    if not settings.SMTP_URL:
        return None
    return Mailer(
        SmtpConfig.from_url(settings.SMTP_URL), settings.SMTP_FROM, settings.SMTP_TIMEOUT_SECONDS
    )
