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

Associations: the called AE title must be the node's; with an allow-list, a calling AE
title not on it is rejected at association (A-ASSOCIATE-RJ, "calling AE title not
recognised", PS3.8 9.3.4).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
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


@dataclass
class ScpConfig:
    """How the node listens. ``allow`` empty means any calling AE title."""

    ae_title: str = "SCANBENCH"
    host: str = "127.0.0.1"
    port: int = 11112
    allow: tuple[str, ...] = ()
    max_pdu: int = 262144  # bytes; larger PDUs cut the per-PDU cost of big images
    network_timeout_s: float = 60.0
    dimse_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in (self.ae_title, *self.allow):
            if not name or len(name) > 16 or not name.strip() or "\\" in name:
                raise InputError(f"{name!r} is not an AE title (1 to 16 characters, no "
                                 "backslash)", "--ae-title/--allow")
        if not 0 <= self.port <= 65535:
            raise InputError(f"{self.port} is not a TCP port", "--port")


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
        ae.maximum_associations = 32
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
        try:
            self._server = self._ae().start_server(
                (self.config.host, self.config.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise InputError(f"cannot listen on {self.config.host}:{self.config.port}: "
                             f"{exc.strerror or exc}", "--port") from None
        log.info("storage SCP %s listening on %s:%d", self.config.ae_title, self.config.host,
                 self.port)

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


def parse_allow(values: Iterable[str] | None) -> tuple[str, ...]:
    """``--allow A --allow B,C`` → ("A", "B", "C")."""
    out: list[str] = []
    for v in values or ():
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return tuple(out)
