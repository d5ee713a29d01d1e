"""SMTP_URL, as operators write it."""

from __future__ import annotations

import pytest

from app.notifications.mailer import SmtpConfig


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:p%40ss@mail.example.com:587?starttls=1",
            SmtpConfig("mail.example.com", 587, "user", "p@ss", False, True),
        ),
        ("smtp://relay:25?starttls=0", SmtpConfig("relay", 25, None, None, False, False)),
        ("smtp://mail.example.com", SmtpConfig("mail.example.com", 25, None, None, False, None)),
        ("smtps://u:p@mail.example.com", SmtpConfig("mail.example.com", 465, "u", "p", True, None)),
    ],
)
def test_smtp_urls(url, expected):
    assert SmtpConfig.from_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://mail.example.com", "smtp://", "smtp://host?starttls=maybe", "mail:25"]
)
def test_malformed_smtp_urls_are_refused(url):
    with pytest.raises(ValueError):
        SmtpConfig.from_url(url)
