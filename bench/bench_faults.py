"""The fault suite: what users and attackers do to dmf-tui, and what harm it does. One table of counts.

    .venv/bin/python bench/bench_faults.py                 # every fault, a few minutes on 2 cores
    .venv/bin/python bench/bench_faults.py --kills 20 --soak 300
    .venv/bin/python bench/bench_faults.py --only bad-input

Every fault runs against real `dmf-tui` processes on a throwaway database in a temp folder, and every
count is read back from the database file with the sqlite3 module (not through the store's own code):
  kill -9       a worker killed mid-epoch N times; the next command that looks must show its run lost
  SIGSTOP       a worker frozen past the heartbeat grace, declared lost, then woken: it must not write on
  SIGHUP        the terminal of a foreground worker closes: its run ends interrupted, the worker stops
  soak          4 slots train a queue while 2 readers list it, for a bounded time: no lock errors,
                no run trained twice
  disk full     the database's filesystem (a small tmpfs) fills up mid-run, then frees: no traceback,
                no run left running, integrity_check passes (needs root to mount; skipped otherwise)
  bad input     40+ malformed commands, flags, files and databases: each a one-line error (or the
                right behaviour), never a traceback, and nothing stored changes
Harm is counted as: runs left running, epoch rows lost (seen before a fault, gone after) or duplicated,
"database is locked" errors, tracebacks, and writes after a lost claim. Target: every harm count 0.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for bench.*
from bench.machine import describe, print_table  # noqa: E402

PY = sys.executable
LONG = 100_000  # epochs of a run that only ends when something stops it
DEADLINE_S = 60.0
# The batch of the runs that get killed: small, so an epoch of synthetic-100k takes about a second and
# a signal lands mid-epoch rather than between epochs.
SLOW_BATCH = 16


@dataclass
class Row:
    fault: str
    trials: int = 0
    survived: int = 0
    left_running: int = 0
    epochs_lost: int = 0
    epochs_duplicated: int = 0
    locked: int = 0
    tracebacks: int = 0
    late_writes: int = 0
    stored_changed: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def harm(self) -> int:
        return (self.left_running + self.epochs_lost + self.epochs_duplicated + self.locked
                + self.tracebacks + self.late_writes + self.stored_changed)


# --- talking to dmf-tui and to its database --------------------------------------------------------

def env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no DMF_DB of the user's, data and XDG dirs inside the temp folder."""
    e = {k: v for k, v in os.environ.items() if k not in ("DMF_DB", "DMF_DATA_DIR")}
    e.update(XDG_DATA_HOME=str(home / "xdg"), DMF_DATA_DIR=str(home / "data"), PYTHONPATH=str(ROOT),
             PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    e.update(extra)
    return e


def cli(home: Path, *args: str, db: Path | str | None = None, timeout: float = 120,
        **extra: str) -> subprocess.CompletedProcess:
    command = [PY, "-m", "dmf_tui", *(["--db", str(db)] if db else []), *args]
    return subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=env(home, **extra), timeout=timeout, cwd=home)


def start_worker(home: Path, db: Path, *args: str, log: Path, **extra: str) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([PY, "-m", "dmf_tui", "--db", str(db), "worker", "--poll", "0.2", *args],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env(home, **extra), cwd=home)


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    """A read with the plain sqlite3 module: the suite's own eyes, independent of the store."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def statuses(db: Path) -> dict[int, str]:
    return dict(query(db, "SELECT id, status FROM runs"))


def epoch_keys(db: Path) -> set[tuple[int, int]]:
    return set(query(db, "SELECT run_id, epoch FROM epochs"))


def duplicated_epochs(db: Path) -> int:
    return sum(n - 1 for (n,) in query(db, "SELECT COUNT(*) FROM epochs GROUP BY run_id, epoch HAVING COUNT(*) > 1"))


T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float = DEADLINE_S) -> T | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return None


def tracebacks(*texts: str) -> int:
    return sum(text.count("Traceback (most recent call last)") for text in texts)


def queue(home: Path, db: Path, *args: str) -> None:
    done = cli(home, "add", "--data", "synthetic-100k", "--device", "cpu", *args, db=db)
    if done.returncode != 0:
        raise SystemExit(f"could not queue runs: {done.stderr.strip()}")


def running_with_epoch(db: Path) -> int | None:
    rows = query(db, "SELECT id FROM runs WHERE status = 'running' AND epoch >= 1")
    return rows[0][0] if rows else None


# --- the faults ------------------------------------------------------------------------------------

def kill_nine(home: Path, kills: int) -> Row:
    """Kill a worker with -9 at a random moment of an epoch, `kills` times, each on a fresh run."""
    row = Row("kill -9 mid-epoch")
    db = home / "kill.db"
    queue(home, db, "--epochs", str(LONG), "--batch-size", str(SLOW_BATCH), "--seed", ",".join(map(str, range(kills))))
    log = home / "kill.log"
    rng = random.Random(0)
    for _ in range(kills):
        row.trials += 1
        worker = start_worker(home, db, "--checkpoint-dir", "none", log=log)
        run_id = wait_for(lambda: running_with_epoch(db))
        if run_id is None:
            row.notes.append("a worker never got a run to its first epoch")
            worker.kill()
            worker.wait()
            continue
        time.sleep(rng.uniform(0.05, 1.0))
        seen = epoch_keys(db)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        listing = cli(home, "runs", "--top", "0", db=db)  # any listing must mark the dead worker's run
        row.tracebacks += tracebacks(listing.stdout, listing.stderr)
        status = statuses(db)[run_id]
        row.left_running += status == "running"
        row.epochs_lost += len(seen - epoch_keys(db))
        row.survived += status == "lost" and listing.returncode == 0
    row.epochs_duplicated = duplicated_epochs(db)
    row.tracebacks += tracebacks(log.read_text())
    return row


REAPER = "import sys; from store.db import open_store; open_store(sys.argv[1]).reap_lost(grace_s=float(sys.argv[2]))"


def sigstop(home: Path, grace_s: float) -> Row:
    """Freeze a worker past the heartbeat grace; another process declares its run lost; wake it."""
    row = Row("SIGSTOP past the grace, SIGCONT", trials=1)
    db = home / "stop.db"
    queue(home, db, "--epochs", str(LONG), "--batch-size", str(SLOW_BATCH))
    log = home / "stop.log"
    worker = start_worker(home, db, "--checkpoint-dir", "none", log=log)
    run_id = wait_for(lambda: running_with_epoch(db))
    if run_id is None:
        worker.kill()
        row.notes.append("the worker never started its run")
        return row
    worker.send_signal(signal.SIGSTOP)
    time.sleep(grace_s + 1)
    # The reaper, with a grace shorter than the 30 s every command uses, so the trial takes seconds.
    reaper = subprocess.run([PY, "-c", REAPER, str(db), str(grace_s)], capture_output=True, text=True,
                            env=env(home), cwd=home, timeout=DEADLINE_S)
    row.tracebacks += tracebacks(reaper.stderr)
    lost_at = len(query(db, "SELECT epoch FROM epochs WHERE run_id = ?", run_id))
    status_then = statuses(db)[run_id]
    worker.send_signal(signal.SIGCONT)
    time.sleep(4)  # a few epochs' time: the woken worker must notice its claim is gone
    late = len(query(db, "SELECT epoch FROM epochs WHERE run_id = ?", run_id)) - lost_at
    worker.send_signal(signal.SIGTERM)
    code = worker.wait(timeout=DEADLINE_S)
    row.late_writes = late
    row.left_running = sum(s == "running" for s in statuses(db).values())
    row.tracebacks = tracebacks(log.read_text())
    row.epochs_duplicated = duplicated_epochs(db)
    row.survived = int(status_then == "lost" and statuses(db)[run_id] == "lost" and late == 0 and code == 0)
    if status_then != "lost":
        row.notes.append(f"run was {status_then} after the grace, not lost")
    return row


def sighup(home: Path) -> Row:
    """Close the terminal of a foreground worker (SIGHUP) and of a foreground `dmf-tui run`."""
    row = Row("SIGHUP (terminal closed)")
    db = home / "hup.db"
    queue(home, db, "--epochs", str(LONG), "--batch-size", str(SLOW_BATCH))
    log = home / "hup.log"
    worker = start_worker(home, db, "--checkpoint-dir", "none", log=log)
    run_id = wait_for(lambda: running_with_epoch(db))
    row.trials += 1
    if run_id is not None:
        worker.send_signal(signal.SIGHUP)
        worker.wait(timeout=DEADLINE_S)
        stopped = query(db, "SELECT COUNT(*) FROM workers WHERE stopped_at IS NULL")[0][0] == 0
        row.survived += statuses(db)[run_id] == "interrupted" and stopped
    else:
        worker.kill()
    row.tracebacks += tracebacks(log.read_text())

    row.trials += 1
    with open(log, "ab") as out:
        run = subprocess.Popen([PY, "-m", "dmf_tui", "--db", str(db), "run", "--data", "synthetic-100k",
                                "--device", "cpu", "--epochs", str(LONG), "--batch-size", str(SLOW_BATCH)],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env(home),
                               cwd=home)
    run_id = wait_for(lambda: running_with_epoch(db))
    if run_id is not None:
        run.send_signal(signal.SIGHUP)
        run.wait(timeout=DEADLINE_S)
        row.survived += statuses(db)[run_id] == "interrupted"
    else:
        run.kill()
    run.wait()
    row.left_running = sum(s == "running" for s in statuses(db).values())
    row.tracebacks += tracebacks(log.read_text())
    return row


READER = """
import sys, time
from store.db import open_store
store, until, errors = open_store(sys.argv[1]), time.monotonic() + float(sys.argv[2]), 0
reads = 0
while time.monotonic() < until:
    try:
        runs = store.leaderboard(limit=50)
        store.queue()
        for run in runs[:5]:
            store.epochs(run.id)
        store.status_counts()
        reads += 1
    except Exception as exc:
        errors += 1
        print("reader error:", exc, flush=True)
print("reads", reads, flush=True)
"""


def soak(home: Path, seconds: float) -> Row:
    """4 CPU slots train short runs while 2 readers list the database, for `seconds`."""
    row = Row(f"4 slots + 2 readers, {seconds:.0f} s", trials=1)
    db = home / "soak.db"
    queue(home, db, "--epochs", "3", "--batch-size", "4096", "--seed", ",".join(map(str, range(2000))))
    log = home / "soak.log"
    worker = start_worker(home, db, "--slots", "4", "--checkpoint-dir", "none", log=log)
    readers = [subprocess.Popen([PY, "-c", READER, str(db), str(seconds)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env(home), cwd=home) for _ in range(2)]
    outputs = [reader.communicate(timeout=seconds + DEADLINE_S)[0] for reader in readers]
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=DEADLINE_S)
    text = log.read_text() + "".join(outputs)
    row.locked = text.count("database is locked")
    row.tracebacks = tracebacks(text)
    row.epochs_duplicated = duplicated_epochs(db)
    row.left_running = sum(s == "running" for s in statuses(db).values())
    done = sum(s == "done" for s in statuses(db).values())
    # A run claimed twice would write one epoch number twice (refused by the unique key, logged as
    # "already has epoch") or end with more epoch rows than it has epochs.
    twice = text.count("already has epoch") + query(
        db, "SELECT COUNT(*) FROM runs r WHERE (SELECT COUNT(*) FROM epochs e WHERE e.run_id = r.id)"
            " > json_extract(r.params, '$.epochs')")[0][0]
    row.epochs_duplicated += twice
    row.survived = int(row.harm == 0 and all(r.returncode == 0 for r in readers))
    queued = sum(s == "queued" for s in statuses(db).values())
    row.notes.append(f"{done} runs trained ({queued} still queued at the end), "
                     f"{sum(int(o.split()[-1]) for o in outputs if 'reads' in o)} reads")
    return row


def disk_full(home: Path) -> Row:
    """Fill the database's filesystem while a worker trains, then free it."""
    row = Row("disk full, then freed")
    mount = home / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        row.notes.append("skipped: mounting a small tmpfs needs root")
        return row
    try:
        row.trials = 1
        db = mount / "runs.db"
        queue(home, db, "--epochs", str(LONG), "--batch-size", str(SLOW_BATCH))
        log = home / "full.log"
        worker = start_worker(home, db, "--checkpoint-dir", "none", log=log)
        run_id = wait_for(lambda: running_with_epoch(db))
        seen = epoch_keys(db)
        filler = mount / "filler"
        with open(filler, "wb") as out:
            try:
                while True:
                    out.write(b"\0" * 65536)
                    out.flush()
            except OSError:
                pass
        time.sleep(5)  # epochs keep landing, or failing to
        alive_while_full = worker.poll() is None
        add = cli(home, "add", "--data", "synthetic-100k", db=db)
        filler.unlink()
        time.sleep(3)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=DEADLINE_S)
        text = log.read_text() + add.stdout + add.stderr
        row.tracebacks = tracebacks(text)
        row.left_running = sum(s == "running" for s in statuses(db).values())
        row.epochs_lost = len(seen - epoch_keys(db))
        row.epochs_duplicated = duplicated_epochs(db)
        ok = query(db, "PRAGMA integrity_check")[0][0] == "ok"
        one_line = add.returncode != 0 and len(add.stderr.strip().splitlines()) == 1
        row.survived = int(run_id is not None and alive_while_full and ok and one_line)
        ended = statuses(db).get(run_id) if run_id is not None else None
        row.notes.append(f"run {run_id} ended {ended}; add on the full disk said: "
                         f"{add.stderr.strip()[:100]!r}; integrity_check {'ok' if ok else 'FAILED'}")
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
    return row


# --- bad input ---------------------------------------------------------------------------------------

@dataclass
class Bad:
    what: str
    args: tuple[str, ...]
    expect: str = "error"  # "error": non-zero exit and one line on stderr; "ok": exit 0; "any": no traceback
    db: str | None = "good"  # which prepared database (None: no --db)
    shell: str | None = None  # a pipeline, e.g. "| head -1"
    env: dict[str, str] = field(default_factory=dict)


def prepare_files(home: Path) -> dict[str, Path]:
    files = home / "files"
    files.mkdir()
    ratings = files / "u.data"
    ratings.write_text("".join(f"{u}\t{i}\t{(u * i) % 5 + 1}\t880000000\n" for u in range(1, 41) for i in range(1, 21)))
    paths = {"ratings": ratings}
    paths["malformed"] = files / "bad.dat"
    paths["malformed"].write_text("1::1::5::0\n2::1::oops::0\n")
    paths["empty"] = files / "empty.dat"
    paths["empty"].write_text("")
    paths["out_of_scale"] = files / "scale.dat"
    paths["out_of_scale"].write_text("1::1::5::0\n2::1::7::0\n")
    paths["huge_ids"] = files / "huge.dat"
    paths["huge_ids"].write_text("1::1::5::0\n99999999999999999999999::1::4::0\n")
    paths["bom"] = files / "bom.csv"
    paths["bom"].write_bytes("\ufeffuserId,movieId,rating,timestamp\n".encode()
                             + ratings.read_text().replace("\t", ",").encode())
    paths["fifo"] = files / "ratings.fifo"
    os.mkfifo(paths["fifo"])
    paths["dir"] = files
    paths["notadb"] = files / "notes.txt"
    paths["notadb"].write_text("just some text, not a database\n" * 20)
    paths["foreign"] = files / "other-app.db"
    conn = sqlite3.connect(paths["foreign"])
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    return paths


def prepare_databases(home: Path) -> dict[str, Path]:
    dbs = {"good": home / "good.db", "old": home / "old.db", "corrupt": home / "corrupt.db"}
    for db in dbs.values():
        if cli(home, "add", "--data", "synthetic-100k", "--lr", "1e-3,1e-2", "--name", "before", db=db).returncode:
            raise SystemExit(f"could not prepare {db}")
    conn = sqlite3.connect(dbs["old"])
    conn.execute("UPDATE schema_version SET version = 0")
    conn.commit()
    conn.close()
    # A real header and schema, then pages of noise: "database disk image is malformed".
    data = bytearray(dbs["corrupt"].read_bytes())
    for wal in (home / "corrupt.db-wal", home / "corrupt.db-shm"):
        wal.unlink(missing_ok=True)
    rng = random.Random(1)
    for i in range(len(data) // 2, len(data)):
        data[i] = rng.randrange(256)
    page = 4096
    data[page:2 * page] = bytes(rng.randrange(256) for _ in range(page))
    dbs["corrupt"].write_bytes(bytes(data))
    return dbs


def bad_inputs(f: dict[str, Path]) -> list[Bad]:
    huge = "99999999999999999999999"
    data = ("--data", str(f["ratings"]), "--device", "cpu")
    return [
        Bad("negative learning rate", ("run", *data, "--lr", "-1")),
        Bad("learning rate not a number", ("run", *data, "--lr", "abc")),
        Bad("unknown model", ("run", *data, "--model", "svd++")),
        Bad("k = 0", ("run", *data, "--k", "0")),
        Bad("k beyond int64", ("run", *data, "--k", huge)),
        Bad("epochs not an integer", ("run", *data, "--epochs", "1.5")),
        Bad("hidden with an empty size", ("run", *data, "--model", "deepmf", "--hidden", "10,,5")),
        Bad("hidden not sizes", ("run", *data, "--model", "deepmf", "--hidden", "wide")),
        Bad("test size 1.5", ("run", *data, "--test-size", "1.5")),
        Bad("unknown device", ("run", *data, "--device", "tpu")),
        Bad("k too big for memory (run)", ("run", *data, "--k", "100000000")),
        Bad("missing ratings file", ("run", "--data", "/nonexistent/ratings.dat")),
        Bad("malformed ratings line", ("run", "--data", str(f["malformed"]))),
        Bad("empty ratings file", ("run", "--data", str(f["empty"]))),
        Bad("rating outside the scale", ("run", "--data", str(f["out_of_scale"]))),
        Bad("ids beyond int64 in a file", ("run", "--data", str(f["huge_ids"]))),
        Bad("a FIFO as data", ("run", "--data", str(f["fifo"]))),
        Bad("a device as data", ("run", "--data", "/dev/zero")),
        Bad("a directory as data", ("run", "--data", str(f["dir"]))),
        Bad("a CSV with a byte-order mark", ("run", "--data", str(f["bom"]), "--device", "cpu", "--epochs", "1"),
            expect="ok"),
        Bad("k too big for memory (add)", ("add", "--data", "synthetic-100k", "--k", "100000000")),
        Bad("empty grid alternative", ("add", "--lr", "1e-3,,1e-2")),
        Bad("negative batch size", ("add", "--batch-size", "-5")),
        Bad("seed beyond int64", ("add", "--seed", huge)),
        Bad("unknown run id", ("show", "4242")),
        Bad("run id beyond int64 (show)", ("show", huge)),
        Bad("run id beyond int64 (cancel)", ("cancel", huge)),
        Bad("unknown run id (retry)", ("retry", "4242")),
        Bad("unknown run id (move)", ("move", "4242", "1")),
        Bad("run id not a number", ("show", "abc")),
        Bad("unknown sort column", ("runs", "--sort", "nonsense")),
        Bad("unknown status", ("runs", "--status", "sleeping")),
        Bad("sweep beyond int64", ("runs", "--sweep", huge), expect="ok"),
        Bad("top beyond int64", ("runs", "--top", huge), expect="ok"),
        Bad("read command on a missing database", ("runs",), db="/nonexistent/dir/x.db"),
        Bad("corrupt database", ("runs",), db="corrupt"),
        Bad("schema older than any migration", ("runs",), db="old"),
        Bad("another application's SQLite file", ("runs",), db=str(f["foreign"])),
        Bad("a text file as the database", ("runs",), db=str(f["notadb"])),
        Bad("postgresql without its driver", ("runs",), db="postgresql://me@127.0.0.1:1/runs", expect="any"),
        Bad("unknown URL scheme", ("runs",), db="gopher://somewhere/db"),
        Bad("a URL of just ://", ("runs",), db="://"),
        Bad("whitespace DMF_DB", ("runs",), db=None, env={"DMF_DB": "   "}, expect="any"),
        Bad("in-memory SQLite for add", ("add", "--data", "synthetic-100k"), db="sqlite://"),
        Bad("export into a directory", ("export", "--csv", str(f["dir"]))),
        Bad("export into a missing folder", ("export", "--csv", "/nonexistent/dir/runs.csv")),
        Bad("export onto a full device", ("export", "--csv", "/dev/full")),
        Bad("export to stdout", ("export", "--csv", "-"), expect="ok"),
        Bad("worker --poll inf", ("worker", "--poll", "inf")),
        Bad("worker --poll nan", ("worker", "--poll", "nan")),
        Bad("worker --poll -1", ("worker", "--poll", "-1")),
        Bad("worker --slots 0", ("worker", "--slots", "0")),
        Bad("worker on a GPU that is not there", ("worker", "--gpus", "7")),
        Bad("fetch an unknown dataset", ("data", "fetch", "ml-1b")),
        Bad("runs piped into head", ("runs", "--top", "0"), expect="any", shell="| head -1"),
        Bad("export piped into head", ("export", "--csv", "-"), expect="any", shell="| head -1"),
        Bad("a big dry-run grid piped into head", ("add", "--dry-run", "--seed", ",".join(map(str, range(3000)))),
            expect="any", shell="| head -1"),
    ]


# A bad input answers at once; one that runs longer than this is hung (or training when it should not).
BAD_INPUT_TIMEOUT_S = 30
# A refused input must not get near the machine's memory first (`--k 100000000` once grew past 8 GB).
BAD_INPUT_MEMORY = 8 << 30


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (BAD_INPUT_MEMORY, BAD_INPUT_MEMORY))


def bad_input(home: Path) -> Row:
    files = prepare_files(home)
    dbs = prepare_databases(home)
    cases = bad_inputs(files)
    row = Row(f"{len(cases)} bad inputs")
    before = {name: db.read_bytes() for name, db in dbs.items() if name != "good"}
    good_rows = query(dbs["good"], "SELECT id, status, params FROM runs")
    foreign = files["foreign"].read_bytes()
    for case in cases:
        row.trials += 1
        db = dbs.get(case.db, case.db) if case.db else None
        argv = [PY, "-m", "dmf_tui", *(["--db", str(db)] if db else []), *case.args]
        if case.shell:
            argv = ["bash", "-c", " ".join(f"'{a}'" for a in argv) + " " + case.shell]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  env=env(home, **case.env), timeout=BAD_INPUT_TIMEOUT_S, cwd=home,
                                  preexec_fn=_limit_memory)
        except subprocess.TimeoutExpired:
            row.notes.append(f"{case.what}: still running after {BAD_INPUT_TIMEOUT_S} s")
            continue
        found = tracebacks(done.stdout, done.stderr) + ("BrokenPipeError" in done.stderr)
        row.tracebacks += found
        # One error line, the last: what comes before it may be argparse's usage or a line of progress.
        lines = done.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("dmf-tui: error:") or ": error: " in line]
        if case.expect == "error":
            good = done.returncode != 0 and len(errors) == 1 and lines[-1] == errors[0] and not found
        elif case.expect == "ok":
            good = done.returncode == 0 and not found
        else:
            good = not found
        row.survived += good
        if not good:
            row.notes.append(f"{case.what}: exit {done.returncode}, stderr {done.stderr.strip()[-160:]!r}")
    changed = [name for name, data in before.items() if dbs[name].read_bytes() != data]
    # `run` records the runs it tried (a refused one as failed): new rows are fine, changed ones are not.
    changed += ["good"] * (not set(good_rows) <= set(query(dbs["good"], "SELECT id, status, params FROM runs")))
    changed += ["foreign"] * (files["foreign"].read_bytes() != foreign)
    row.stored_changed = len(changed)
    if changed:
        row.notes.append(f"changed by bad input: {', '.join(changed)}")
    if Path("/nonexistent").exists():
        row.notes.append("a read command created /nonexistent")
        row.stored_changed += 1
    return row


# --- the table ---------------------------------------------------------------------------------------

FAULTS = ("kill", "sigstop", "sighup", "soak", "disk-full", "bad-input")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="kill -9 trials (default 10)")
    parser.add_argument("--soak", type=float, default=60.0, help="seconds of 4 slots + 2 readers (default 60)")
    parser.add_argument("--grace", type=float, default=4.0, help="heartbeat grace for the SIGSTOP trial, s")
    parser.add_argument("--only", choices=FAULTS, action="append", help="run only these faults")
    args = parser.parse_args()
    chosen = args.only or FAULTS
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="dmf-faults-") as tmp:
        home = Path(tmp)
        steps = {
            "kill": lambda: kill_nine(home, args.kills),
            "sigstop": lambda: sigstop(home, args.grace),
            "sighup": lambda: sighup(home),
            "soak": lambda: soak(home, args.soak),
            "disk-full": lambda: disk_full(home),
            "bad-input": lambda: bad_input(home),
        }
        for name in chosen:
            print(f"… {name}", file=sys.stderr, flush=True)
            rows.append(steps[name]())

    header = ("fault", "trials", "survived", "left running", "epochs lost", "epochs dup.", "locked",
              "tracebacks", "late writes", "stored data changed")
    print_table(header, [(r.fault, r.trials, r.survived, r.left_running, r.epochs_lost, r.epochs_duplicated,
                          r.locked, r.tracebacks, r.late_writes, r.stored_changed) for r in rows])
    total = sum(r.harm for r in rows)
    print(f"\nharm in all: {total}; {time.monotonic() - started:.0f} s; {describe()}")
    for r in rows:
        for note in r.notes:
            print(f"- {r.fault}: {note}")
    return 0 if total == 0 and all(r.survived == r.trials for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
