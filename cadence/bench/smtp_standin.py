"""An SMTP server on loopback for tests, built on aiosmtpd, that keeps what it receives.

The email channel has to be tested against a server that speaks real SMTP: AUTH, STARTTLS,
temporary (4xx) and permanent (5xx) refusals and connections that drop mid-message. Received
messages are parsed back with the `email` package, so tests assert on headers and MIME parts
rather than on raw bytes.

STARTTLS and implicit TLS use a self-signed certificate made at run time (with the
`cryptography` package when it is installed, else the `openssl` command). Clients either trust
it through `SmtpStandIn.ssl_context` / `cert_path`, or turn verification off, as `url` does
with `verify=0`.
"""

from __future__ import annotations

import asyncio
import atexit
import email
import email.policy
import functools
import importlib
import importlib.util
import logging
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["ReceivedMail", "SmtpFault", "SmtpStandIn", "self_signed_certificate"]

COMMANDS = ("MAIL", "RCPT", "DATA")
DEFAULT_REPLIES = {
    4: "4.3.0 Temporary failure, try again later (stand-in)",
    5: "5.1.1 Requested action not taken: mailbox unavailable (stand-in)",
}


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted message: the SMTP envelope and the message parsed back.

    `raw` is the DATA as sent, with SMTP's CRLF line ends; `message` is parsed with plain
    newlines, so bodies compare equal to the text a client set.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    peer: str
    username: str | None
    tls: bool
    received_at: float

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def body(self, preference: tuple[str, ...] = ("plain",)) -> str:
        """The text of the preferred part (`("html",)` for the HTML one), or "" if none."""
        part = self.message.get_body(preferencelist=preference)
        return "" if part is None else str(part.get_content())


@dataclass
class SmtpFault:
    """Answer the next `count` MAIL, RCPT or DATA commands with `code message`, or drop the
    connection instead of answering (what a crash or a network cut looks like to a client)."""

    command: str
    count: int = 1
    code: int = 451
    message: str | None = None
    drop: bool = False

    def __post_init__(self) -> None:
        self.command = self.command.upper()
        if self.command not in COMMANDS:
            raise ValueError(f"command must be one of {COMMANDS}, not {self.command!r}")
        if self.count < 1:
            raise ValueError("count must be at least 1")
        if not 400 <= self.code <= 599:
            raise ValueError("code must be a 4xx or 5xx reply")

    @property
    def reply(self) -> str:
        return f"{self.code} {self.message or DEFAULT_REPLIES[self.code // 100]}"


@functools.cache
def self_signed_certificate() -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 and localhost, made once per process.

    The files live in a temporary directory removed when the process exits.
    """
    directory = Path(tempfile.mkdtemp(prefix="cadence-smtp-tls-"))
    atexit.register(shutil.rmtree, directory, True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    if importlib.util.find_spec("cryptography") is not None:
        _certificate_with_cryptography(cert, key)
    elif shutil.which("openssl"):
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "7",
                "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    else:
        raise RuntimeError("TLS needs the cryptography package or the openssl command")
    return cert, key


def _certificate_with_cryptography(cert_path: Path, key_path: Path) -> None:
    x509: Any = importlib.import_module("cryptography.x509")
    oid: Any = importlib.import_module("cryptography.x509.oid")
    hashes: Any = importlib.import_module("cryptography.hazmat.primitives.hashes")
    ec: Any = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec")
    serialization: Any = importlib.import_module("cryptography.hazmat.primitives.serialization")
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _quiet_login_data_warning(record: logging.LogRecord) -> bool:
    """aiosmtpd 1.4 warns on every successful AUTH about a field it sets itself."""
    return "login_data is deprecated" not in record.getMessage()


class _Handler:
    """aiosmtpd's hooks: refuse or drop on demand, enforce AUTH, keep what is accepted."""

    def __init__(self, owner: SmtpStandIn) -> None:
        self.owner = owner

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.owner.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        fault = self.owner._take_fault("MAIL")
        if fault is not None:
            return await self._misbehave(server, fault)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        fault = self.owner._take_fault("RCPT")
        if fault is not None:
            return await self._misbehave(server, fault)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self.owner._take_fault("DATA")
        if fault is not None:
            return await self._misbehave(server, fault)
        raw = envelope.original_content or b""
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        peer = session.peer
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=email.message_from_bytes(
                raw.replace(b"\r\n", b"\n"), policy=email.policy.default
            ),
            raw=raw,
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            username=login.decode() if login is not None else None,
            tls=server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None,
            received_at=time.time(),
        )
        self.owner._store(mail)
        return "250 2.0.0 Message accepted for delivery"

    @staticmethod
    async def _misbehave(server: SMTP, fault: SmtpFault) -> str:
        if not fault.drop:
            return fault.reply
        transport = server.transport
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()
        elif transport is not None:
            transport.close()
        # Losing the connection cancels this session's task, so the reply below never goes.
        await asyncio.sleep(5)
        return "421 4.4.2 Connection dropped (stand-in)"


class _Controller(Controller):
    """aiosmtpd's threaded controller on a socket bound beforehand, so port 0 works."""

    def __init__(self, handler: _Handler, sock: socket.socket, **kwargs: Any) -> None:
        self._sock = sock
        self.sessions = 0
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)

    def factory(self) -> SMTP:
        self.sessions += 1
        return SMTP(self.handler, **self.SMTP_kwargs)


class SmtpStandIn:
    """An SMTP server on 127.0.0.1 with an OS-chosen port; use it as a context manager.

    With `username`, MAIL is refused (530) until the client has logged in with those
    credentials; AUTH is offered only after STARTTLS when `starttls` is on, as real servers
    do, and in plain text on loopback otherwise. `require_starttls` refuses everything but
    EHLO, STARTTLS and QUIT before TLS. `implicit_tls` speaks TLS from the first byte (smtps).
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        require_starttls: bool = False,
        implicit_tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        server_hostname: str = "smtp.stand-in.invalid",
    ) -> None:
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        if implicit_tls and starttls:
            raise ValueError("choose STARTTLS or implicit TLS, not both")
        self.username, self.password = username, password
        self.starttls, self.require_starttls = starttls, require_starttls
        self.implicit_tls = implicit_tls
        self.auth_required = username is not None
        self._host, self._port_wanted = host, port
        self._server_hostname = server_hostname
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._faults: deque[SmtpFault] = deque()
        self._controller: _Controller | None = None
        self._port: int | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the SMTP stand-in is not running")
        return self._port

    @property
    def url(self) -> str:
        """A `CADENCE_SMTP_URL` for this server (certificate checks off: it is self-signed)."""
        auth = ""
        if self.username is not None:
            auth = quote(self.username, safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        scheme = "smtps" if self.implicit_tls else "smtp"
        if self.implicit_tls:
            query = "verify=0"
        elif self.starttls:
            query = "starttls=require&verify=0"
        else:
            query = "starttls=off"
        return f"{scheme}://{auth}{self.host}:{self.port}?{query}"

    @property
    def cert_path(self) -> Path:
        """The server's certificate, for clients that verify (`cafile=`)."""
        return self_signed_certificate()[0]

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate, hostname checks included."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    @property
    def messages(self) -> list[ReceivedMail]:
        """Messages accepted so far, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def sessions(self) -> int:
        """How many SMTP connections have been accepted (clients batching reuse one)."""
        return self._controller.sessions if self._controller is not None else 0

    def start(self) -> SmtpStandIn:
        if self._controller is not None:
            raise RuntimeError("the SMTP stand-in is already running")
        kwargs: dict[str, Any] = {
            "server_hostname": self._server_hostname,
            "ready_timeout": 30.0,
            # aiosmtpd counts only STARTTLS as TLS here; implicit TLS is encrypted throughout.
            "auth_require_tls": self.starttls,
        }
        if self.username is not None:
            kwargs["authenticator"] = self._authenticate
            mail_log = logging.getLogger("mail.log")
            if _quiet_login_data_warning not in mail_log.filters:
                mail_log.addFilter(_quiet_login_data_warning)
        if self.starttls or self.implicit_tls:
            cert, key = self_signed_certificate()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            if self.starttls:
                kwargs["tls_context"] = context
                kwargs["require_starttls"] = self.require_starttls
            else:
                kwargs["ssl_context"] = context
        sock = socket.create_server((self._host, self._port_wanted))
        controller = _Controller(_Handler(self), sock, **kwargs)
        try:
            controller.start()
        except BaseException:
            sock.close()
            raise
        controller.sessions = 0
        self._controller = controller
        self._port = int(sock.getsockname()[1])
        return self

    def close(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        self._port = None

    def __enter__(self) -> SmtpStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail_next(
        self,
        command: str = "RCPT",
        count: int = 1,
        *,
        code: int = 451,
        message: str | None = None,
        drop: bool = False,
    ) -> None:
        """Answer the next `count` MAIL/RCPT/DATA with `code message`, or drop the connection.

        Faults apply in the order given; e.g. `fail_next("DATA", code=550)` for a permanent
        refusal, `fail_next("DATA", drop=True)` for a connection lost mid-message.
        """
        fault = SmtpFault(command, count, code, message, drop)
        with self._lock:
            self._faults.append(fault)

    @property
    def faults_waiting(self) -> int:
        """Faults given with `fail_next` that have not been used yet."""
        with self._lock:
            return sum(f.count for f in self._faults)

    def reset(self) -> None:
        """Forget received messages and pending faults."""
        with self._lock:
            self._messages.clear()
            self._faults.clear()

    def _take_fault(self, command: str) -> SmtpFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.command == command:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _store(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (
            auth_data.login == (self.username or "").encode()
            and auth_data.password == (self.password or "").encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
