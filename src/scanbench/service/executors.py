"""Where jobs run: in process, in local worker processes, or on a Dask cluster.

Every executor takes a job function and its spec (:func:`scanbench.service.jobs.run_job`,
:class:`~scanbench.service.jobs.JobSpec`) and returns a handle with ``done()``,
``result()`` and ``running()``; ``cancel(handle, reason)`` stops a job, and a job given
``timeout_s`` is stopped when it runs longer (``reason``: :class:`JobTimedOut`).

:class:`LocalExecutor`, the node's default, runs each job in a process of its own,
``workers`` at a time, started from a fork server (a clean process that imported the
analysis code once, never a copy of the node's threads):

- a job that exceeds its timeout, or is cancelled, has its process killed (SIGKILL);
  the other jobs and the node go on, and the next job gets a new process;
- a process that dies (killed, out of memory, crashed) fails only its own job;
- a worker never outlives the node: it holds the read end of a pipe whose only writer
  is the node. On Linux the kernel sends the worker SIGKILL the moment that pipe's last
  writer closes (``O_ASYNC`` with ``F_SETSIG``, fcntl(2)), whatever the worker is doing,
  even if stopped; elsewhere a thread of the worker waits on the pipe and exits the
  process. So a ``kill -9`` of the node leaves no orphan worker. (A parent-death signal,
  prctl ``PR_SET_PDEATHSIG``, would watch the fork server, the worker's parent, not the
  node.) Workers stay in the node's process group and ignore SIGINT and SIGTERM: a
  Ctrl-C or a service manager's SIGTERM to the whole group reaches the node, and the
  node decides (it lets running jobs finish within its grace period, then kills them).

:class:`DaskExecutor`: a timeout or cancel releases the job's future
(``Client.cancel(force=True)``) and records the job as timed out or cancelled at once;
a task not yet started never runs, but Dask cannot stop a task already running in a
worker thread: it runs to its end on that worker and its result is dropped.
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures as cf
import contextlib
import fcntl
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Protocol

from scanbench.errors import ScanbenchError

if TYPE_CHECKING:
    from scanbench.service.jobs import JobOutcome, JobSpec

ENV_DASK = "SCANBENCH_DASK_SCHEDULER"
log = logging.getLogger("scanbench.node")

#: Imported once by the fork server, so that a job's process starts with them loaded
#: (scanbench.service.job_imports: every analysis module and the clinical extractors; a
#: job importing them itself cost 0.45 s of CPU against 0.11 s for a water analysis).
PRELOAD = ["scanbench.service.jobs", "scanbench.api", "scanbench.analysis.registry",
           "scanbench.dicom", "scanbench.service.job_imports"]


class JobStopped(Exception):
    """A job the executor stopped before it finished (the message says why)."""


class JobTimedOut(JobStopped):
    """Stopped because it ran longer than its timeout; the job may be retried."""


class JobCancelled(JobStopped):
    """Stopped on request (``scanbench jobs cancel``); never retried automatically."""


class JobInterrupted(JobStopped):
    """Stopped because the node is stopping; it runs again at the next start."""


class WorkerDied(Exception):
    """The job's process ended without an answer (killed, out of memory, crashed)."""


class Handle(Protocol):
    """A submitted job: concurrent.futures.Future and the Dask handle both fit."""

    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> Any: ...


class JobExecutor(Protocol):
    """Runs job functions somewhere; ``describe`` names where, for logs."""

    def submit(self, fn: Callable[[JobSpec], JobOutcome], spec: JobSpec,
               timeout_s: float | None = None) -> Handle: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def is_running(handle: Handle) -> bool:
    """Whether the job has started (a handle that cannot tell counts as started)."""
    running = getattr(handle, "running", None)
    return bool(running()) if callable(running) else True


def stop(executor: JobExecutor, handle: Handle, reason: JobStopped) -> None:
    """Stop one job (``executor.cancel`` when the executor has it)."""
    cancel = getattr(executor, "cancel", None)
    if callable(cancel):
        cancel(handle, reason)


class InlineExecutor:
    """Runs each job at once in the calling thread (tests, ``--workers 0``). Nothing
    can stop a job here: no timeout, no cancel of a running job, a stop waits for it."""

    def submit(self, fn: Callable[[JobSpec], JobOutcome], spec: JobSpec,
               timeout_s: float | None = None) -> Handle:
        fut: cf.Future[JobOutcome] = cf.Future()
        fut.set_running_or_notify_cancel()
        try:
            fut.set_result(fn(spec))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut

    def cancel(self, handle: Handle, reason: JobStopped) -> None:
        pass  # already finished when submit returned

    def describe(self) -> str:
        return "in process"

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- local processes

@dataclass
class _Task:
    fn: Callable[[Any], Any]
    spec: Any
    future: cf.Future[Any]
    timeout_s: float | None
    proc: BaseProcess | None = None
    results: mpc.Connection | None = None  # the worker's answer
    alive: mpc.Connection | None = None  # write end kept by the node: its close kills the worker
    started: float = 0.0
    stopped: JobStopped | None = None

    @property
    def name(self) -> str:
        jid = getattr(self.spec, "job_id", None)
        return f"job {jid}" if jid is not None else "job"


def _die_with_node(alive: mpc.Connection) -> None:
    """Make this worker process end when the node does (module docstring)."""
    fd = alive.fileno()
    if sys.platform.startswith("linux"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
            fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGKILL)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        except OSError:
            pass  # the watching thread below still ends the process

    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            alive.recv_bytes()  # the node never writes: this returns only at its end
        os._exit(70)

    threading.Thread(target=watch, name="node-watch", daemon=True).start()
    # The node may have gone before O_ASYNC was set: then the pipe is at EOF already
    # and the thread above has ended the process.


def _worker(fn: Callable[[Any], Any], spec: Any, results: mpc.Connection,
            alive: mpc.Connection) -> None:
    """The body of a job's process: say ("started", pid) once it is bound to the node,
    run ``fn(spec)``, send back ("ok", value) or ("error", exception)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the node decides (module docstring)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_node(alive)
    results.send(("started", os.getpid()))  # bound to the node: the job begins
    try:
        answer: tuple[str, Any] = ("ok", fn(spec))
    except BaseException as exc:
        answer = ("error", exc)
    try:
        results.send(answer)
    except Exception as exc:  # an exception or outcome that cannot be pickled
        what = "the outcome" if answer[0] == "ok" else type(answer[1]).__name__
        results.send(("error", RuntimeError(
            f"{what} could not be sent back from the worker: {type(exc).__name__}: {exc}; "
            f"{answer[1]!s:.500}")))
    results.close()


#: Executors not closed yet: closed at interpreter exit, before multiprocessing's own exit
#: handler would wait for their workers (which ignore SIGTERM) to finish their jobs.
_OPEN: weakref.WeakSet[LocalExecutor] = weakref.WeakSet()


@atexit.register
def _close_open_executors() -> None:
    for ex in list(_OPEN):
        with contextlib.suppress(Exception):
            ex.close()


class LocalExecutor:
    """Jobs in local processes, one process per job, ``workers`` at a time (module
    docstring). Thread-safe; a monitor thread starts processes, collects answers and
    enforces timeouts."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or max(1, (os.cpu_count() or 2) - 1)
        methods = multiprocessing.get_all_start_methods()
        self._ctx: Any = multiprocessing.get_context("forkserver" if "forkserver" in methods
                                                else "spawn")
        if "forkserver" in methods:
            self._ctx.set_forkserver_preload(PRELOAD)
        self._lock = threading.Lock()
        self._waiting: collections.deque[_Task] = collections.deque()
        self._running: dict[cf.Future[Any], _Task] = {}
        self._wake_r, self._wake_w = mpc.Pipe(duplex=False)
        self._thread: threading.Thread | None = None
        self._closed = False
        _OPEN.add(self)

    def submit(self, fn: Callable[[JobSpec], JobOutcome], spec: JobSpec,
               timeout_s: float | None = None) -> Handle:
        if self._closed:
            raise RuntimeError("the executor is closed")
        fut: cf.Future[Any] = cf.Future()
        with self._lock:
            self._waiting.append(_Task(fn, spec, fut, timeout_s))
            if self._thread is None:
                self._thread = threading.Thread(target=self._monitor, name="job-monitor",
                                                daemon=True)
                self._thread.start()
        self._wake()
        return fut

    def cancel(self, handle: Handle, reason: JobStopped) -> None:
        """Stop a job: a waiting one never starts, a running one's process is killed.
        Its handle then raises ``reason``."""
        with self._lock:
            task = next((t for t in self._waiting if t.future is handle), None)
            if task is not None:
                self._waiting.remove(task)
                if not task.future.done():
                    task.future.set_exception(reason)
                return
            task = self._running.get(handle)  # type: ignore[call-overload]
            if task is None or task.stopped is not None:
                return
            task.stopped = reason
        self._kill(task)

    def pids(self) -> list[int]:
        """Process ids of the jobs running now."""
        with self._lock:
            return [t.proc.pid for t in self._running.values()
                    if t.proc is not None and t.proc.pid is not None]

    def describe(self) -> str:
        return f"local worker processes ({self.workers} at a time, one per job)"

    def close(self) -> None:
        """Stop every job still waiting or running (their handles raise
        :class:`JobInterrupted`) and the monitor thread."""
        with self._lock:
            self._closed = True
            tasks = list(self._waiting) + list(self._running.values())
        for t in tasks:
            self.cancel(t.future, JobInterrupted("the node stopped while the job was "
                                                 "running"))
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # -- monitor thread

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send_bytes(b"w")

    def _kill(self, task: _Task) -> None:
        if task.proc is not None:
            with contextlib.suppress(OSError, ValueError):
                task.proc.kill()
        self._wake()

    def _start(self, task: _Task) -> None:
        results_r, results_w = self._ctx.Pipe(duplex=False)
        alive_r, alive_w = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(target=_worker, args=(task.fn, task.spec, results_w, alive_r),
                                 name=f"scanbench-{task.name.replace(' ', '-')}")
        try:
            proc.start()
        except Exception as exc:
            for c in (results_r, results_w, alive_r, alive_w):
                c.close()
            with self._lock:
                self._running.pop(task.future, None)
            task.future.set_exception(task.stopped or WorkerDied(
                f"the worker process could not be started: {type(exc).__name__}: {exc}"))
            return
        results_w.close()
        alive_r.close()
        task.proc, task.results, task.alive = proc, results_r, alive_w
        task.started = time.monotonic()  # the timeout counts from here
        if task.stopped is not None:  # cancelled while it was being started
            self._kill(task)

    def _monitor(self) -> None:
        while True:
            with self._lock:  # running from now on: a cancel sets task.stopped
                starting: list[_Task] = []
                while self._waiting and not self._closed and len(self._running) < self.workers:
                    task = self._waiting.popleft()
                    self._running[task.future] = task
                    starting.append(task)
            for task in starting:
                self._start(task)
            with self._lock:
                tasks = list(self._running.values())
                if self._closed and not tasks and not self._waiting:
                    return
            now = time.monotonic()
            for t in tasks:
                if (t.timeout_s is not None and t.stopped is None
                        and now - t.started > t.timeout_s):
                    t.stopped = JobTimedOut(f"timed out after {t.timeout_s:g} s; its "
                                            "worker process was killed")
                    log.warning("%s timed out after %g s: killing process %s", t.name,
                                t.timeout_s, t.proc.pid if t.proc else "?")
                    self._kill(t)
            deadlines = [t.started + t.timeout_s - now for t in tasks
                         if t.timeout_s is not None and t.stopped is None]
            wait_s = max(0.0, min([1.0, *deadlines]))
            objects: list[Any] = [self._wake_r]
            for t in tasks:
                if t.results is not None and not t.results.closed:
                    objects.append(t.results)
                if t.proc is not None:
                    objects.append(t.proc.sentinel)
            ready = mpc.wait(objects, wait_s)
            if self._wake_r in ready:
                with contextlib.suppress(EOFError, OSError):
                    while self._wake_r.poll():
                        self._wake_r.recv_bytes()
            for t in tasks:
                self._check(t)

    def _check(self, t: _Task) -> None:
        """Read the answer of ``t`` if there is one; finish it once its process ended."""
        assert t.proc is not None and t.results is not None
        # Whether the process has ended is asked BEFORE its pipe is read: a worker sends its
        # answer and exits at once, so asked after an empty read, "ended" could be true of a
        # process whose answer arrived in between, and the job was lost as "died (exit
        # status 0)" (seen under load in the demo). Asked first, an ended process has
        # nothing more to send: what it sent is in the pipe when it is read below.
        ended = not t.proc.is_alive()
        answer: tuple[str, Any] | None = None
        while answer is None and not t.results.closed:
            try:
                if not t.results.poll():
                    break
                message = t.results.recv()
            except (EOFError, OSError):  # no answer will come: wait for the process's end
                t.results.close()
                break
            except Exception as exc:  # an answer that cannot be unpickled here
                message = ("error", WorkerDied(f"the job's answer could not be read: "
                                               f"{type(exc).__name__}: {exc}"))
            if message[0] == "started":
                if t.future.set_running_or_notify_cancel():
                    log.info("%s started in process %d", t.name, message[1])
            else:
                answer = message
        if answer is None and not ended:
            return
        if answer is None:
            t.proc.join()
        else:  # the worker has answered and exits now (killed if it lingers)
            t.proc.join(timeout=2)
            if t.proc.is_alive():
                t.proc.kill()
                t.proc.join()
        for c in (t.results, t.alive):
            if c is not None:
                c.close()
        with self._lock:
            self._running.pop(t.future, None)
        if t.future.done():
            return
        if t.stopped is not None:
            t.future.set_exception(t.stopped)
        elif answer is None:
            t.future.set_exception(WorkerDied(_exit_reason(t.proc.exitcode)))
        elif answer[0] == "ok":
            t.future.set_result(answer[1])
        else:
            t.future.set_exception(answer[1])
        self._wake()  # a slot is free


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker process died (killed by {name}) before answering"
    return f"the worker process died (exit status {code}) before answering"


# --------------------------------------------------------------------------- Dask

class _DaskHandle:
    """A Dask future that a timeout or cancel can end on the node's side."""

    def __init__(self, future: Any, timeout_s: float | None) -> None:
        self.future = future
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.stopped: JobStopped | None = None

    def running(self) -> bool:
        return True  # submitted to the cluster: Dask does not say when a task starts

    def done(self) -> bool:
        if self.stopped is None and self.deadline is not None and \
                time.monotonic() > self.deadline and not self.future.done():
            self.stopped = JobTimedOut(
                f"timed out after {self.timeout_s:g} s on the Dask cluster; its future was "
                "released (a task already running on a worker runs to its end there)")
            with contextlib.suppress(Exception):
                self.future.cancel(force=True)
        return self.stopped is not None or bool(self.future.done())

    def result(self, timeout: float | None = None) -> Any:
        if self.stopped is not None:
            raise self.stopped
        return self.future.result(timeout=timeout)


class DaskExecutor:
    """Jobs on a Dask cluster (``distributed.Client(address)``), same job functions."""

    def __init__(self, address: str) -> None:
        from distributed import Client

        try:
            self.client = Client(address, timeout="20s", set_as_default=False)
        except OSError as exc:
            raise ScanbenchError(f"cannot reach the Dask scheduler: {exc}", address) from None
        self.address = address

    def submit(self, fn: Callable[[JobSpec], JobOutcome], spec: JobSpec,
               timeout_s: float | None = None) -> Handle:
        jid = getattr(spec, "job_id", "fn")
        future = self.client.submit(fn, spec, pure=False,
                                    key=f"scanbench-job-{jid}-{os.urandom(4).hex()}")
        return _DaskHandle(future, timeout_s)

    def cancel(self, handle: Handle, reason: JobStopped) -> None:
        if isinstance(handle, _DaskHandle) and handle.stopped is None:
            handle.stopped = reason
            with contextlib.suppress(Exception):
                handle.future.cancel(force=True)

    def describe(self) -> str:
        return f"Dask cluster at {self.address}"

    def close(self) -> None:
        self.client.close()


def make_executor(workers: int | None = None) -> JobExecutor:
    """Dask when ``SCANBENCH_DASK_SCHEDULER`` is set, else local worker processes
    (``workers`` 0: in process)."""
    address = os.environ.get(ENV_DASK)
    if address:
        return DaskExecutor(address)
    if workers == 0:
        return InlineExecutor()
    return LocalExecutor(workers)
