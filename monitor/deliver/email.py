"""Hand a digest to an SMTP server, or write it as an .eml file when no server is configured.

What the caller may rely on: `send_smtp` never raises for a server's answer or a network failure;
it returns an `SmtpOutcome` saying sent, retry (a 4xx reply, a dropped or refused connection, a
timeout) or failed (a 5xx reply or a refused recipient, with the server's own words). `sent`
means the server accepted the message for delivery, nothing less. Writing into the outbox folder
raises only an `OutboxError` (from any OSError), which says why in an operator's words.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from ..config_delivery import SmtpConfig
from ..errors import OutboxError


@dataclass(frozen=True)
class SmtpOutcome:
    status: str  # sent | retry | failed
    code: int | None = None  # the SMTP reply code that decided it
    error: str = ""


def send_smtp(message: EmailMessage, smtp: SmtpConfig, recipient: str) -> SmtpOutcome:
    """One attempt to hand `message` to the server for `recipient`."""
    try:
        with _connect(smtp) as client:
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            refused = client.send_message(message, smtp.sender_address, [recipient])
    except smtplib.SMTPRecipientsRefused as e:
        return _refused(e.recipients)
    except smtplib.SMTPResponseException as e:
        return _reply(e.smtp_code, e.smtp_error)
    except smtplib.SMTPNotSupportedError as e:
        error = f"server does not support it: {e}"
        return SmtpOutcome("failed", None, f"{error} {fix}" if (fix := _fix(e, smtp)) else error)
    except (smtplib.SMTPException, OSError) as e:  # disconnects, refusals, timeouts, TLS
        error = f"connection failed: {e or type(e).__name__}"
        if isinstance(e, ConnectionRefusedError):  # a wrong port, more often than a server down
            error += f" (nothing answers at {smtp.host}:{smtp.port}: check smtp.host, smtp.port)"
        elif hint := _tls_hint(e, smtp):
            error += f" ({hint})"
        return SmtpOutcome("retry", None, error)
    if refused:  # only when some of several recipients were refused; kept for completeness
        return _refused(refused)
    return SmtpOutcome("sent", 250)


def _fix(error: smtplib.SMTPNotSupportedError, smtp: SmtpConfig) -> str:
    """What to change in config.toml when the server lacks what it asks for: the operator saw
    the server's words alone, and had no idea which setting to change."""
    if "STARTTLS" in str(error):
        return (
            'Set smtp.security = "none" for a local relay that takes mail unencrypted, or "tls"'
            " for a server that expects TLS from the start (port 465)."
        )
    if "AUTH" in str(error) and smtp.username:
        return (
            "Leave smtp.username empty for a relay that needs no login; many servers offer it"
            ' only over TLS (smtp.security "starttls" or "tls").'
        )
    return ""


def _tls_hint(error: BaseException, smtp: SmtpConfig) -> str:
    """What a TLS mismatch between smtp.security and the server looks like, said: a port-465
    server waits for TLS while the client waits for its greeting (a timeout); a plain server
    answers TLS with text (wrong version number). Retried with no word on the setting, such a
    digest died 4.5 hours later (a re-test)."""
    text = str(error)
    if smtp.security != "tls" and smtp.port == 465:
        return 'port 465 expects TLS from the start: set smtp.security = "tls"'
    if smtp.security == "tls" and "WRONG_VERSION_NUMBER" in text:
        return (
            f'{smtp.host}:{smtp.port} does not start with TLS: smtp.security = "starttls" (port'
            ' 587) or "none" (a local relay)'
        )
    code = getattr(error, "verify_code", None)  # OpenSSL's X509_V_ERR_*
    if code in (62, 64):  # the host name or IP address is not the certificate's
        return f"smtp.host must be the name the server's certificate is for, not {smtp.host}"
    if code in (9, 10):  # not yet valid, expired: the message says which
        return ""
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "the server's certificate is not one this machine trusts"
    return ""


def _connect(smtp: SmtpConfig) -> smtplib.SMTP:
    if smtp.security == "tls":
        return smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout, context=ssl.create_default_context()
        )
    client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    try:
        if smtp.security == "starttls":
            client.starttls(context=ssl.create_default_context())
    except BaseException:
        client.close()
        raise
    return client


def _reply(code: int, text: bytes | str) -> SmtpOutcome:
    reason = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    reason = f"{code} {' '.join(reason.split())}"
    return SmtpOutcome("retry" if 400 <= code < 500 else "failed", code, reason)


def _refused(recipients: dict[str, tuple[int, bytes]]) -> SmtpOutcome:
    address, (code, text) = next(iter(recipients.items()))
    outcome = _reply(code, text)
    return SmtpOutcome(outcome.status, code, f"recipient {address} refused: {outcome.error}")


@contextmanager
def outbox_errors(folder: Path) -> Iterator[None]:
    """An OSError met writing into the outbox `folder`, raised as an OutboxError saying why."""
    try:
        yield
    except OSError as e:
        raise OutboxError(str(folder), _why_not(folder, e)) from e


def _why_not(folder: Path, error: OSError) -> str:
    # os.path's tests, not Path's: they answer False rather than raise (no permission).
    for place in (folder, *folder.parents):
        if os.path.lexists(place):
            if not os.path.isdir(place):
                return "it is a file, not a folder" if place == folder else f"{place} is a file"
            break
    doing = "written into" if os.path.isdir(folder) else "created"
    return f"it cannot be {doing}: {error.strerror or error}"


def check_outbox(folder: Path) -> None:
    """Make the outbox folder if it is not there, and make sure a file can be written into it
    (a nameless one, gone at once); an OutboxError says why not. For commands about to write
    there: a service started with an outbox it cannot write kept each digest from then on
    waiting for retries."""
    with outbox_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass


def write_eml(message: EmailMessage, folder: Path, name: str) -> Path:
    """Write the message atomically as folder/name.eml (a retry rewrites the same file), on
    disk before it counts as sent: recorded as sent, an unsynced file could be lost to a power
    cut, empty or gone (a code review). An OutboxError when the folder cannot take it."""
    with outbox_errors(folder):
        return _write_eml(message, folder, name)


def _write_eml(message: EmailMessage, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.eml"
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".eml.tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(message.as_bytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)  # the new name, in the folder's entries
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path
