"""A node that never loses a job (issue 11 §3), with real `scanbench node` processes on a
temporary home and free ports, fed real PET image-quality series (the virtual scanner's
NEMA NU 2-2018 IEC phantom) by dcmtk's storescu:

- SIGTERM while a job runs: the job is recorded as interrupted, its series stays queued;
  the restarted node runs the same job again and stores one result, not two;
- kill -9 while a job runs: no process of the node survives it (its fork server, its
  resource tracker, its job's worker, even a stopped one), and the restarted node runs
  the job again;
- a job past its timeout has its worker killed, is recorded as "timed out after N s"
  and the node goes on (the next series is analysed); `jobs retry` runs it again;
- `scanbench jobs cancel` of a queued and of a running job: both recorded as cancelled,
  the running one's worker killed, neither run again, not even after a restart.

The node's job worker is found from its log line ("job N started in process P"). Where a
test needs the job to be still running when it acts, it stops that worker with SIGSTOP
first: a real stuck worker, so the test does not depend on how long the analysis takes.
Every wait is a bounded poll of the database, the log or /proc; no duration is asserted.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from nodekit import Node, count, db_url_of, need, query, storescu, wait_for

from scanbench.simulate.pet import simulate_iq

IQ = "pet.nema_nu2_2018.image_quality"


@pytest.fixture(scope="module", autouse=True)
def _dcmtk() -> None:
    need("storescu", "echoscu")
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc to follow the node's processes")


@pytest.fixture(scope="module")
def iq_series(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[list[Path], str]]:
    """Three PET image-quality series (files, Series Instance UID), each of its own study."""
    out = []
    for i in range(3):
        folder = tmp_path_factory.mktemp(f"iq{i}")
        truth = simulate_iq(folder, seed=i)
        out.append((sorted(folder.glob("*.dcm")), str(truth["series_instance_uid"])))
    return out


# --------------------------------------------------------------------------- helpers

def _node(home: Path, *args: str) -> Node:
    # One worker process; jobs start a second after their series' last instance.
    return Node(home, None, quiet_seconds=1.0,
                args=("--workers", "1", "--stop-grace", "0", *args))


def _send(node: Node, files: list[Path]) -> None:
    r = storescu(node.port, files)
    assert r.returncode == 0, r.stderr


def _job_of(url: str, series_uid: str) -> tuple[int, str, int, str | None]:
    rows = query(url, "select id, state, attempts, error from job where kind = 'series' "
                 f"and target_uid = '{series_uid}' order by id")
    assert len(rows) <= 1, rows  # one job per series: a restart re-runs it, never adds one
    return rows[0] if rows else (0, "", 0, None)


def _state(url: str, series_uid: str) -> str:
    return _job_of(url, series_uid)[1]


def _worker(node: Node, job_id: int) -> int:
    """The pid of the worker process of ``job_id``, from the node's log."""
    pattern = re.compile(rf"job {job_id} started in process (\d+)")

    def found() -> int | None:
        m = pattern.findall(node.text())
        return int(m[-1]) if m else None

    return int(wait_for(f"job {job_id}'s worker to start", found, 120, every=0.02))


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state letter, start time) of a process, None when there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], int(fields[19])


def _descendants(pid: int) -> dict[int, int]:
    """Every process below ``pid`` (children, theirs...): pid -> start time."""
    parents: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            parents[int(entry)] = (st[0], st[2])
    found: dict[int, int] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, (ppid, start) in parents.items():
            if ppid == p and child not in found:
                found[child] = start
                frontier.append(child)
    return found


def _running(pid: int, start: int) -> bool:
    """The process is there (the same one: same start time) and not a zombie."""
    st = _stat(pid)
    return st is not None and st[2] == start and st[1] != "Z"


def _stop_worker(pid: int) -> None:
    """SIGSTOP: the worker hangs for real from now on (a stuck job)."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        pytest.fail(f"the job's worker {pid} had already finished: the series analysed "
                    "faster than the test could catch it")


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SCANBENCH_HOME=str(home))
    env.pop("SCANBENCH_DASK_SCHEDULER", None)
    return subprocess.run([sys.executable, "-m", "scanbench", *args], env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def _results(url: str, series_uid: str) -> int:
    return count(url, "result", "where series_id = (select id from series where "
                 f"series_uid = '{series_uid}')")


# --------------------------------------------------------------------------- tests

def test_sigterm_mid_job_interrupts_it_and_the_restarted_node_runs_it_once(
        tmp_path: Path, iq_series: list[tuple[list[Path], str]]) -> None:
    files, uid = iq_series[0]
    home = tmp_path / "home"
    url = db_url_of(home, None)
    node = _node(home).start()
    try:
        _send(node, files)
        job = wait_for("the job", lambda: _job_of(url, uid)[0], 120)
        worker = _worker(node, job)
        _stop_worker(worker)  # stuck: SIGTERM must still stop the node
        worker_start = _stat(worker)[2]  # type: ignore[index]
        wait_for("the job recorded as running", lambda: _state(url, uid) == "running", 60)
        assert node.stop(timeout=60) == 0, node.text()
    finally:
        node.stop()
    assert not _running(worker, worker_start)  # the stuck worker was killed
    job_id, state, attempts, error = _job_of(url, uid)
    assert (state, attempts) == ("interrupted", 1) and "the node stopped" in (error or "")
    assert query(url, f"select state from series where series_uid = '{uid}'") == [("queued",)]
    assert _results(url, uid) == 0

    node = _node(home).start()  # the restart picks the job up again
    try:
        wait_for("the interrupted job to be done", lambda: _state(url, uid) == "done", 180)
    finally:
        assert node.stop() == 0
    assert _job_of(url, uid)[:3] == (job_id, "done", 2)
    assert _results(url, uid) == 1  # one result: nothing stored twice
    assert count(url, "measurement", "where analysis = "
                 f"'{IQ}'") == count(url, "measurement")  # the IQ analysis, nothing else
    assert query(url, f"select state from series where series_uid = '{uid}'") == [("done",)]


def test_kill9_mid_job_leaves_no_process_and_the_restart_completes_the_job(
        tmp_path: Path, iq_series: list[tuple[list[Path], str]]) -> None:
    files, uid = iq_series[1]
    home = tmp_path / "home"
    url = db_url_of(home, None)
    node = _node(home).start()
    try:
        _send(node, files)
        job = wait_for("the job", lambda: _job_of(url, uid)[0], 120)
        worker = _worker(node, job)
        _stop_worker(worker)  # a stopped process cannot even run a watching thread
        wait_for("the job recorded as running", lambda: _state(url, uid) == "running", 60)
        assert node.proc is not None
        below = _descendants(node.proc.pid)
        assert worker in below, below  # the worker, the fork server, the resource tracker
        assert len(below) >= 3, below
        pgid = os.getpgid(node.proc.pid)
        assert all(os.getpgid(p) == pgid for p in below)  # in the node's process group
        node.kill9()
        try:
            wait_for("every process of the node to end",
                     lambda: not [p for p, t in below.items() if _running(p, t)], 60)
        except AssertionError:
            left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:200] for p, t in below.items()
                    if _running(p, t)}
            raise AssertionError(f"orphans left by kill -9: {left}") from None
    finally:
        node.stop()
    assert _state(url, uid) == "running"  # as the killed node left it

    node = _node(home).start()  # recovery: the dead owner's job runs again
    try:
        wait_for("the job to be done after the restart", lambda: _state(url, uid) == "done",
                 180)
    finally:
        assert node.stop() == 0
    assert _job_of(url, uid)[2] == 2
    assert _results(url, uid) == 1
    assert "was interrupted" in node.text()


def test_a_job_past_its_timeout_is_killed_recorded_and_the_node_goes_on(
        tmp_path: Path, iq_series: list[tuple[list[Path], str]]) -> None:
    """A timeout of 0.2 s for PET series, as a node might have from its jobs.toml: a
    real image-quality analysis (reading 150 slices, then the phantom) takes longer."""
    (slow, slow_uid), (fast, fast_uid) = iq_series[0], iq_series[2]
    home = tmp_path / "home"
    home.mkdir()
    (home / "jobs.toml").write_text("[timeouts]\nPT = 0.2\n")
    url = db_url_of(home, None)
    node = _node(home).start()
    try:
        _send(node, slow)
        wait_for("the job to time out", lambda: _state(url, slow_uid) == "failed", 180)
        job_id, _, _, error = _job_of(url, slow_uid)
        assert error is not None and error.startswith("timed out after 0.2 s"), error
        worker = _worker(node, job_id)
        wait_for("its worker to be gone", lambda: _stat(worker) is None
                 or _stat(worker)[1] == "Z", 60)  # type: ignore[index]
        assert "timed out after 0.2 s: killing process" in node.text()
        # The node goes on: the next series gets its own worker, and a timeout of its own
        # from the command line (it overrides the file).
    finally:
        assert node.stop() == 0
    node = _node(home, "--job-timeout", "PT=900").start()
    try:
        _send(node, fast)
        wait_for("the next series to be analysed", lambda: _state(url, fast_uid) == "done",
                 180)
    finally:
        assert node.stop() == 0
    # A timed-out job is retryable, with a longer timeout.
    r = _cli(home, "jobs", "retry", str(job_id), "--workers", "1", "--job-timeout", "PT=900")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _job_of(url, slow_uid)[1:3] == ("done", 2)
    assert _results(url, slow_uid) == 1


def test_cancel_a_queued_and_a_running_job(
        tmp_path: Path, iq_series: list[tuple[list[Path], str]]) -> None:
    (a_files, a_uid), (b_files, b_uid) = iq_series[0], iq_series[1]
    home = tmp_path / "home"
    url = db_url_of(home, None)
    node = _node(home).start()
    try:
        _send(node, a_files)
        a_job = wait_for("job A", lambda: _job_of(url, a_uid)[0], 120)
        a_worker = _worker(node, a_job)
        _stop_worker(a_worker)  # A holds the only worker: B must wait, queued
        _send(node, b_files)
        b_job = wait_for("job B", lambda: _job_of(url, b_uid)[0], 120)
        wait_for("A running, B queued", lambda: _state(url, a_uid) == "running"
                 and _state(url, b_uid) == "queued", 60)

        r = _cli(home, "jobs", "cancel", str(b_job))
        assert r.returncode == 0 and "cancelled" in r.stdout, r.stdout + r.stderr
        r = _cli(home, "jobs", "cancel", str(a_job))
        assert r.returncode == 0 and "cancelled" in r.stdout, r.stdout + r.stderr
        # The node stops A's worker (it polls the database every second).
        wait_for("A's worker to be killed", lambda: _stat(a_worker) is None
                 or _stat(a_worker)[1] == "Z", 60)  # type: ignore[index]
        assert f"job {b_job} started" not in node.text()  # B never ran
        r = _cli(home, "jobs", "cancel", str(a_job))  # a finished job cannot be cancelled
        assert r.returncode == 2 and "only a queued, running or interrupted" in r.stderr
    finally:
        assert node.stop() == 0
    for uid in (a_uid, b_uid):
        assert _job_of(url, uid)[1] == "cancelled"
        assert query(url, f"select state from series where series_uid = '{uid}'") == [
            ("cancelled",)]
    node = _node(home).start()  # a restart does not run a cancelled job again
    try:
        r = _cli(home, "jobs", "retry")  # nor does a retry of "every failed job"
        assert "no failed or interrupted jobs" in r.stdout, r.stdout + r.stderr
    finally:
        assert node.stop() == 0
    assert [_job_of(url, u)[1:3] for u in (a_uid, b_uid)] == [("cancelled", 1),
                                                                ("cancelled", 1)]
    assert _results(url, a_uid) == _results(url, b_uid) == 0


def test_sigterm_to_jobs_run_interrupts_its_job_and_the_next_run_completes_it(
        tmp_path: Path, iq_series: list[tuple[list[Path], str]]) -> None:
    """Not only the node: `scanbench jobs run` (as ingest and jobs retry) stopped by
    SIGTERM records its running job as interrupted and leaves no worker behind."""
    files, uid = iq_series[2]
    home = tmp_path / "home"
    url = db_url_of(home, None)
    r = _cli(home, "ingest", "--no-analyse", str(files[0].parent))
    assert r.returncode == 0, r.stdout + r.stderr
    env = dict(os.environ, SCANBENCH_HOME=str(home))
    env.pop("SCANBENCH_DASK_SCHEDULER", None)
    proc = subprocess.Popen([sys.executable, "-m", "scanbench", "jobs", "run", "--workers",
                             "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for("the job recorded as running", lambda: _state(url, uid) == "running", 180)
        below = _descendants(proc.pid)
        # The job's worker: a child of the fork server, itself a child of `jobs run`.
        (worker,) = [p for p in below if _stat(p) and _stat(p)[0] != proc.pid]  # type: ignore[index]
        _stop_worker(worker)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        wait_for("every process of `jobs run` to end",
                 lambda: not [p for p, t in below.items() if _running(p, t)], 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert _job_of(url, uid)[1:3] == ("interrupted", 1)
    r = _cli(home, "jobs", "run", "--workers", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _job_of(url, uid)[1:3] == ("done", 2)
    assert _results(url, uid) == 1
