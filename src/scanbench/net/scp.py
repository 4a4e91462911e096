"""The node's DICOM storage SCP (pynetdicom): scanners and PACS send here.

PS3.4 Annex B (Storage Service Class) and Annex A (Verification): every storage SOP
class pynetdicom knows (CT, MR, PET, enhanced CT/MR/PET, secondary capture, the
radiation dose SRs and every other SR, RT objects, ...; 170 in pynetdicom 3) with every
transfer syntax it knows (implicit/explicit little endian, deflate, big endian, JPEG
baseline/extended/lossless, JPEG-LS, JPEG 2000, HTJ2K, RLE, MPEG/HEVC), and C-ECHO.
The instance is never decoded here: the bytes as received, with a file meta group built
from the command, are handed to the ingest pipeline, which writes and indexes them.

Status (PS3.4 B.2.3): 0x0000 only once ``store_instance`` has returned STORED or
DUPLICATE, that is once the file is durable and indexed; REJECTED (the pipeline cannot
parse the instance) gives 0xC000 "cannot understand" with the reason in the Error
Comment; an error while storing (disk full, database down) gives 0xA700 "out of
resources" so the sender keeps the instance and retries. Either way a log line names the
sender and the instance, and the association goes on with the next instance.

Access (see docs/node-network.md for what each protects against):

- the called AE title must be the node's; with an AE allow-list, a calling AE title not on
  it is rejected at association (A-ASSOCIATE-RJ, "calling AE title not recognised",
  PS3.8 9.3.4). AE titles are compared exactly, case included, after stripping leading
  and trailing spaces, which PS3.5 6.2 (VR AE) makes non-significant; an empty or
  all-space entry is refused. AE titles are not secrets: anyone can send any title.
- with an address allow-list (IP addresses or CIDR networks), a connection from any
  other address is closed as soon as it is accepted, before any DICOM is read.
- at most ``max_per_peer`` connections from one address at once (more are closed when
  accepted) and ``max_associations`` in all (more are rejected, A-ASSOCIATE-RJ "local
  limit exceeded", PS3.8 9.3.4): idle connections from one host cannot lock out the
  others.
- ARTIM (PS3.8 9.1.5): a connection that sends no A-ASSOCIATE-RQ within
  ``artim_timeout_s`` (and a TLS handshake not complete by then) is closed; an
  association idle for ``network_timeout_s`` is aborted.
- DICOM TLS (PS3.15 Annex B.9, BCP 195 TLS Secure Transport Connection Profile: TLS 1.2
  or later) with ``tls_cert``/``tls_key``; with ``tls_ca``, only senders presenting a
  certificate signed by that CA are accepted. The handshake runs in the connection's own
  thread, so a client that connects and stays silent cannot stall the listener.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from scanbench.errors import InputError

log = logging.getLogger("scanbench.net.scp")
#: What an operator follows at INFO: each association, accepted or rejected, and how it
#: ended (the C-STORE details stay on scanbench.net.scp).
node_log = logging.getLogger("scanbench.node")

SUCCESS = 0x0000
CANNOT_UNDERSTAND = 0xC000
OUT_OF_RESOURCES = 0xA700


class InstanceSink(Protocol):
    """What the SCP hands instances to (the ingest pipeline)."""

    def store_instance(self, raw: bytes, *, source: str,
                       calling_ae: str | None = None) -> Any: ...


def outcome_kind(outcome: Any) -> tuple[str, str]:
    """("stored" | "duplicate" | "rejected", reason) from the pipeline's StoreOutcome,
    read by name so that an enum, a string or an object with ``status``/``reason`` work."""
    status = getattr(outcome, "status", outcome)
    name = str(getattr(status, "name", getattr(status, "value", status))).lower()
    reason = str(getattr(outcome, "reason", "") or "")
    for kind in ("stored", "duplicate", "rejected"):
        if kind in name:
            return kind, reason
    return "rejected", reason or f"unknown outcome {outcome!r}"


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class ScpConfig:
    """How the node listens. ``allow`` (calling AE titles) and ``allow_hosts`` (addresses,
    networks) empty mean anyone: the node then warns at start."""

    ae_title: str = "SCANBENCH"
    host: str = "127.0.0.1"
    port: int = 11112
    allow: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()
    max_pdu: int = 262144  # bytes; larger PDUs cut the per-PDU cost of big images
    network_timeout_s: float = 60.0  # idle association (no PDU for this long): aborted
    dimse_timeout_s: float = 60.0
    # ARTIM (PS3.8 9.1.5): a sender asks for its association at once after connecting
    artim_timeout_s: float = 10.0
    max_associations: int = 32
    max_per_peer: int = 8
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None

    def __post_init__(self) -> None:
        self.ae_title = ae_title(self.ae_title, "--ae-title")
        self.allow = tuple(dict.fromkeys(ae_title(a, "--allow") for a in self.allow))
        _ = self.networks  # validates allow_hosts
        if not 0 <= self.port <= 65535:
            raise InputError(f"{self.port} is not a TCP port", "--port")
        for name, value in (("--idle-timeout", self.network_timeout_s),
                            ("--artim-timeout", self.artim_timeout_s),
                            ("--dimse-timeout", self.dimse_timeout_s)):
            if not value > 0:
                raise InputError(f"{value} is not a timeout in seconds (> 0)", name)
        for name, n in (("--max-associations", self.max_associations),
                        ("--max-per-peer", self.max_per_peer)):
            if n < 1:
                raise InputError(f"{n} is not a number of associations (>= 1)", name)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InputError("DICOM TLS needs both a certificate and its private key",
                             "--tls-cert/--tls-key")
        if self.tls_ca is not None and self.tls_cert is None:
            raise InputError("--tls-ca (client certificates) needs --tls-cert and --tls-key",
                             "--tls-ca")

    @property
    def networks(self) -> tuple[IpNetwork, ...]:
        """The address allow-list as networks (a single address is a /32 or /128)."""
        out = []
        for text in self.allow_hosts:
            try:
                out.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise InputError(f"{text!r} is not an IP address or network (e.g. 10.1.2.3 "
                                 "or 10.1.2.0/24)", "--allow-host") from None
        return tuple(out)

    @property
    def open_to_anyone(self) -> bool:
        return not self.allow and not self.allow_hosts

    def tls_context(self) -> ssl.SSLContext | None:
        """The server's TLS context (TLS 1.2 or later, BCP 195), or None without TLS."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise InputError(f"cannot load the TLS certificate and key: {exc}",
                             self.tls_cert) from None
        if self.tls_ca is not None:
            try:
                ctx.load_verify_locations(cafile=self.tls_ca)
            except (OSError, ssl.SSLError) as exc:
                raise InputError(f"cannot load the TLS CA certificates: {exc}",
                                 self.tls_ca) from None
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def ae_title(value: str, option: str) -> str:
    """An AE title as compared: leading and trailing spaces stripped (non-significant,
    PS3.5 6.2), then 1 to 16 characters of the default repertoire without backslash or
    control characters; case is kept and significant."""
    name = value.strip(" ")
    if (not name or len(name) > 16 or "\\" in name
            or any(not 0x20 <= ord(c) < 0x7F for c in name)):
        raise InputError(f"{value!r} is not an AE title (1 to 16 characters besides leading "
                         "and trailing spaces, no backslash or control characters)", option)
    return name


class _Gate:
    """Admits a new TCP connection or not, by address allow-list and per-address count.
    The count is of the connection sockets still open (a closed socket has no file
    descriptor), so nothing can get out of step when an association ends any way."""

    def __init__(self, networks: tuple[IpNetwork, ...], max_per_peer: int) -> None:
        self.networks = networks
        self.max_per_peer = max_per_peer
        self._open: dict[str, list[socket.socket]] = {}
        self._lock = threading.Lock()

    def refusal(self, host: str) -> str | None:
        """Why a connection from ``host`` is refused, or None."""
        if self.networks:
            try:
                ip = ipaddress.ip_address(host.split("%")[0])
            except ValueError:
                return "address not understood"
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if not any(ip in net for net in self.networks):
                return "address not on the allow-list"
        with self._lock:
            alive = [s for s in self._open.pop(host, []) if s.fileno() != -1]
            if alive:
                self._open[host] = alive
            if len(alive) >= self.max_per_peer:
                return f"already {len(alive)} connections from this address (the limit)"
        return None

    def opened(self, host: str, sock: socket.socket) -> None:
        with self._lock:
            self._open.setdefault(host, []).append(sock)


class _GuardedServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the gate applied at accept, and the TLS
    handshake moved out of the listening thread into the connection's own thread, under
    the ARTIM timeout."""

    gate: _Gate
    handshake_timeout_s: float

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        host = str(address[0])
        why = self.gate.refusal(host)
        if why is not None:
            with contextlib.suppress(OSError):
                client.close()
            node_log.warning("connection from %s:%s refused: %s", host, address[1], why)
            raise OSError(why)  # socketserver drops the request quietly
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(client, server_side=True,
                                                  do_handshake_on_connect=False)
        self.gate.opened(host, client)
        return client, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            previous = request.gettimeout()
            try:
                request.settimeout(self.handshake_timeout_s)
                request.do_handshake()
                request.settimeout(previous)
            except (OSError, ValueError) as exc:  # ssl.SSLError and timeouts are OSErrors
                node_log.warning("connection from %s:%s closed: TLS handshake failed (%s)",
                                 client_address[0], client_address[1], exc)
                with contextlib.suppress(OSError):
                    request.close()
                return
        super().finish_request(request, client_address)


@dataclass
class ScpStats:
    stored: int = 0
    duplicate: int = 0
    rejected: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, kind: str) -> None:
        with self.lock:
            setattr(self, kind, getattr(self, kind) + 1)


class StorageScp:
    """A running storage SCP; ``start()`` returns once it listens, ``stop()`` waits for
    the associations under way to end."""

    def __init__(self, sink: InstanceSink, config: ScpConfig | None = None) -> None:
        self.sink = sink
        self.config = config or ScpConfig()
        self.stats = ScpStats()
        self._server: ThreadedAssociationServer | None = None

    def _ae(self) -> AE:
        c = self.config
        ae = AE(ae_title=c.ae_title)
        ae.maximum_pdu_size = c.max_pdu
        ae.network_timeout = c.network_timeout_s
        ae.dimse_timeout = c.dimse_timeout_s
        ae.acse_timeout = c.artim_timeout_s  # pynetdicom's ARTIM timer
        ae.maximum_associations = c.max_associations
        ae.require_called_aet = True
        if c.allow:
            ae.require_calling_aet = list(c.allow)
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax is not None:
                ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
        return ae

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the system when configured as 0)."""
        if self._server is None:
            return self.config.port
        return int(self._server.server_address[1])

    def start(self) -> None:
        handlers: list[Any] = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo),
                               (evt.EVT_REJECTED, self._on_rejected),
                               (evt.EVT_ACCEPTED, _on_accepted),
                               (evt.EVT_RELEASED, _on_ended), (evt.EVT_ABORTED, _on_ended),
                               (evt.EVT_CONN_OPEN, _quick_ack)]
        c = self.config
        tls = c.tls_context()
        ae = self._ae()
        try:
            server = ae.make_server((c.host, c.port), ssl_context=tls, evt_handlers=handlers,
                                    server_class=_GuardedServer)
        except OSError as exc:
            raise InputError(f"cannot listen on {c.host}:{c.port}: "
                             f"{exc.strerror or exc}", "--port") from None
        assert isinstance(server, _GuardedServer)
        server.gate = _Gate(c.networks, c.max_per_peer)
        server.handshake_timeout_s = c.artim_timeout_s
        # as AE.start_server(block=False) does, with our server class
        thread = threading.Thread(target=server.serve_forever, daemon=True,
                                  name=f"AcceptorServer@{c.port}")
        thread.start()
        ae._servers.append(server)
        self._server = server
        log.info("storage SCP %s listening on %s:%d%s", c.ae_title, c.host, self.port,
                 " (DICOM TLS)" if tls else "")
        for line in access_warnings(c):
            node_log.warning("%s", line)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- handlers (run in the association's thread) -------------------------------------
    def _on_echo(self, event: Any) -> int:
        return SUCCESS

    def _on_rejected(self, event: Any) -> None:
        node_log.warning("association from %r (%s) rejected: calling AE title not on the "
                         "allow-list or called AE title not %s", _calling(event), _peer(event),
                         self.config.ae_title)

    def _on_store(self, event: Any) -> Any:
        calling = _calling(event)
        sop_uid = str(event.request.AffectedSOPInstanceUID or "")
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:  # a dataset pynetdicom could not even assemble
            return self._refuse(sop_uid, calling, f"unreadable data set: {exc}")
        try:
            outcome = self.sink.store_instance(data, source="c-store", calling_ae=calling)
        except Exception as exc:  # disk, database: the sender must keep it and retry
            self.stats.count("failed")
            log.error("C-STORE %s from %s not stored: %s: %s", sop_uid, calling,
                      type(exc).__name__, exc)
            return _status(OUT_OF_RESOURCES, f"not stored: {exc}")
        kind, reason = outcome_kind(outcome)
        if kind == "rejected":
            return self._refuse(sop_uid, calling, reason)
        self.stats.count(kind)
        log.debug("C-STORE %s from %s: %s", sop_uid, calling, kind)
        return SUCCESS

    def _refuse(self, sop_uid: str, calling: str, reason: str) -> Any:
        self.stats.count("rejected")
        log.warning("C-STORE %s from %s rejected (0x%04X cannot understand): %s", sop_uid,
                    calling, CANNOT_UNDERSTAND, reason)
        return _status(CANNOT_UNDERSTAND, reason)


def _on_accepted(event: Any) -> None:
    node_log.info("association from %r (%s) accepted", _calling(event), _peer(event))


def _on_ended(event: Any) -> None:
    how = "released" if event.event == evt.EVT_RELEASED else "aborted"
    node_log.info("association from %r (%s) %s", _calling(event), _peer(event), how)


def _quick_ack(event: Any) -> None:
    """Acknowledge every TCP segment at once (Linux TCP_QUICKACK, re-armed before each
    read, since the kernel drops back to delayed ACKs by itself).

    A sender that keeps Nagle's algorithm on (Debian's dcmtk does unless TCP_NODELAY=1 is
    in its environment; so do many modalities) writes the C-STORE command PDU, then waits
    for its ACK before writing the data set; with the receiver's delayed ACK that is a
    40 ms stall per instance, 20 instances/s at most whatever their size. Measured on
    loopback with storescu: 19 → 150 instances/s."""
    quickack = getattr(socket, "TCP_QUICKACK", None)
    try:
        assoc_socket = event.assoc.dul.socket
        raw = assoc_socket.socket
        read = assoc_socket.recv
    except AttributeError:
        return
    if quickack is None or raw is None:
        return

    def recv(n: int) -> Any:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        return read(n)

    assoc_socket.recv = recv


def _status(code: int, comment: str) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]  # LO
    return ds


def _calling(event: Any) -> str:
    try:
        return str(event.assoc.requestor.ae_title).strip()
    except AttributeError:
        return "?"


def _peer(event: Any) -> str:
    try:
        r = event.assoc.requestor
        return f"{r.address}:{r.port}"
    except AttributeError:
        return "?"


def parse_allow(values: Iterable[str] | None, option: str = "--allow") -> tuple[str, ...]:
    """``--allow A --allow B,C`` → ("A", "B", "C"); an empty entry is an error, never
    a silent "anyone"."""
    out: list[str] = []
    for v in values or ():
        for part in v.split(","):
            if not part.strip():
                raise InputError(f"{v!r}: an empty entry (AE titles and addresses cannot be "
                                 "empty)", option)
            out.append(part.strip())
    return tuple(out)


def access_warnings(c: ScpConfig) -> list[str]:
    """What the operator must know at start about who can reach the node."""
    out = []
    if c.open_to_anyone:
        out.append(f"any sender that can reach {c.host}:{c.port} may store here: no "
                   "--allow (calling AE titles) and no --allow-host (addresses) given; AE "
                   "titles are not secrets, so on a hospital network give --allow-host "
                   "(and DICOM TLS); see docs/node-network.md")
    elif not c.allow_hosts:
        out.append("only AE titles are checked (--allow): anyone can send a listed AE "
                   "title; add --allow-host to restrict by address")
    return out
