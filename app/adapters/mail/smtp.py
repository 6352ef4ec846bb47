"""SMTP delivery with smtplib.

``SMTP_URL``: ``smtp://user:password@host:587`` speaks STARTTLS (required: credentials never
travel in clear), ``smtps://user:password@host:465`` TLS from the first byte. A local relay that
offers no TLS (a development mail catcher, a relay on the same host) is
``smtp://host:25?starttls=false``. User and password are percent-decoded. Every connection has
the ``SMTP_TIMEOUT`` timeout.
"""
from __future__ import annotations

import smtplib
import ssl
from urllib.parse import parse_qs, unquote, urlsplit

from app.adapters.mail import MailError, OutgoingMail, build_message


class SmtpMailer:
    def __init__(self, url: str, *, sender: str, timeout: float = 10.0) -> None:
        self.url = url
        self.sender = sender
        self.timeout = timeout

    def _settings(self) -> tuple[str, str, int, str | None, str | None, bool]:
        if not self.url:
            raise MailError("SMTP_URL is not set.")
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps") or not parts.hostname:
            raise MailError("SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465.")
        try:
            port = parts.port or (465 if scheme == "smtps" else 587)
        except ValueError as exc:
            raise MailError("SMTP_URL has a port that is not a number.") from exc
        starttls = parse_qs(parts.query).get("starttls", ["true"])[-1].lower() not in ("false", "0", "no", "off")
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return scheme, parts.hostname, port, user, password, starttls

    def send(self, mail: OutgoingMail) -> None:
        scheme, host, port, user, password, starttls = self._settings()
        message = build_message(mail, sender=self.sender)
        context = ssl.create_default_context()
        try:
            if scheme == "smtps":
                client = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=context)
            else:
                client = smtplib.SMTP(host, port, timeout=self.timeout)
            with client:
                if scheme == "smtp" and starttls:
                    client.ehlo()
                    if not client.has_extn("starttls"):
                        raise MailError(f"{host} does not offer STARTTLS; use smtps:// or ?starttls=false "
                                        "for a relay without TLS.")
                    client.starttls(context=context)
                    client.ehlo()
                if user:
                    client.login(user, password or "")
                refused = client.send_message(message, to_addrs=[mail.to])
        except MailError:
            raise
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise MailError(f"The mail server answered {exc.smtp_code}: {text}"[:500]) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailError(f"The mail server refused the recipient {mail.to}.") from exc
        except (smtplib.SMTPException, OSError) as exc:  # OSError: refused, unreachable, timed out, TLS
            raise MailError(f"Could not reach the mail server {host}:{port}: {exc or type(exc).__name__}"[:500]) from exc
        if refused:
            raise MailError(f"The mail server refused the recipient {mail.to}.")
