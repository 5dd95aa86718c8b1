"""Faults for real: the hub runs in its own gunicorn process (ASGI, as in production) on a
PostgreSQL cluster of the test's own (never the shared server); the test restarts that cluster under running
uploads, and SIGKILLs the web process in the middle of an upload and of a download."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from pefthub import Client
from tests.redis_server import _free_port
from tests.utils import folder_files

pytestmark = pytest.mark.slow  # a PostgreSQL cluster, migrations and a web process per test

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 120  # seconds: generous bounds on a busy machine; a timeout is a failure, not a flake


def _wait_for(what: str, condition, timeout: float = WAIT, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


# --- a PostgreSQL cluster of the test's own ----------------------------------------------------
class OwnPostgres:
    """``initdb`` + ``pg_ctl`` in a temp folder, on a free port (as user postgres when root)."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: its root folder is private to root, and the server
        # runs as postgres.
        self.folder = Path(tempfile.mkdtemp(prefix="pefthub-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/pefthub"
        if os.geteuid() == 0:
            shutil.chown(self.folder, user="postgres")

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=WAIT)

    def _ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-o", options, action, *extra)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "--username=postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        self.start()
        self.sql("CREATE DATABASE pefthub", dbname="postgres")

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def sql(self, query: str, dbname: str = "pefthub") -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True) as c:
            cursor = c.execute(query)
            return cursor.fetchall() if cursor.description else []

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self._run("pg_ctl", "-D", str(self.data), "-w", "stop", "-m", "immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def own_postgres():
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.fail("initdb/pg_ctl are not on PATH: the fault tests start their own PostgreSQL")
    cluster = OwnPostgres()
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.destroy()


# --- the hub in a process of its own -----------------------------------------------------------
class LiveHub:
    """gunicorn (its production settings: uvicorn workers, ASGI) serving the hub on ``db``; killable for real."""

    def __init__(self, db: OwnPostgres, data_dir: Path) -> None:
        self.db = db
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PEFTHUB_", "DJANGO", "CELERY"))}
        self.env.update(
            DJANGO_SETTINGS_MODULE="config.settings.local",
            DJANGO_DEBUG="false",
            DATABASE_URL=db.url,
            PEFTHUB_DATA_DIR=str(data_dir),
            PYTHONPATH=str(REPO_ROOT),
            HF_HUB_OFFLINE="1",
        )
        self.blobs = data_dir / "blobs"
        self.upload_tmp = data_dir / "tmp" / "uploads"

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=self.env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def prepare(self, base_dir: Path) -> str:
        """Migrate, register the tiny base model, make alice; returns her token."""
        self.manage("migrate", "--no-input")
        script = (
            "import sys, django; django.setup()\n"
            "from pathlib import Path\n"
            "from tests.factories import MemberFactory, register_base\n"
            "register_base(Path(sys.argv[1]), 'tiny-llama', 'test-org/tiny-llama', '0' * 64)\n"
            "print(MemberFactory(username='alice').token)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(base_dir)], cwd=REPO_ROOT, env=self.env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        log = (self.data_dir / "web.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "docker/gunicorn.conf.py", "config.asgi:application",
             "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--timeout", "300"],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the hub exited: {self.log_tail()}")
            try:
                return requests.get(f"{self.url}/api/v1/base-models/", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        _wait_for("the hub to answer", ready, interval=0.25)

    def kill(self) -> None:
        """SIGKILL the whole server (arbiter and worker): no handler, no cleanup runs."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=WAIT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self) -> str:
        return (self.data_dir / "web.log").read_text(errors="replace")[-3000:]

    def blob_files(self) -> set[str]:
        return {p.name for p in self.blobs.rglob("*") if p.is_file()} if self.blobs.exists() else set()

    def temp_files(self) -> list[str]:
        return sorted(p.name for p in self.upload_tmp.iterdir()) if self.upload_tmp.exists() else []

    def spooling(self) -> list[str]:
        """Files under the upload spool folder that the server's processes hold open (unnamed ones too)."""
        held = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != self.proc.pid:
                    continue
                targets = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
            except OSError:  # gone meanwhile, or not ours to read
                continue
            held += [t for t in targets if t.startswith(f"{self.upload_tmp}/")]
        return held

    def versions(self, name: str) -> list[int]:
        rows = self.db.sql(
            "SELECT v.number FROM hub_adapterversion v JOIN hub_adapter a ON v.adapter_id = a.id "
            f"WHERE a.name = '{name}' ORDER BY v.number"
        )
        return [number for (number,) in rows]

    def counts(self) -> dict[str, int]:
        tables = ("hub_adapterversion", "hub_blob", "hub_versionfile", "hub_auditevent", "hub_outboxevent")
        return {t: self.db.sql(f"SELECT count(*) FROM {t}")[0][0] for t in tables}


@pytest.fixture
def live_hub(own_postgres, tiny_base_dir):
    data_dir = Path(tempfile.mkdtemp(prefix="pefthub-faults-"))
    hub = LiveHub(own_postgres, data_dir)
    hub.token = hub.prepare(tiny_base_dir)
    try:
        yield hub
    finally:
        hub.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _create_adapter(hub: LiveHub, name: str) -> None:
    response = requests.post(
        f"{hub.url}/api/v1/adapters/", json={"namespace": "alice", "name": name},
        headers={"Authorization": f"Bearer {hub.token}"}, timeout=60,
    )  # fmt: skip
    assert response.status_code == 201, response.text


def _is_clear_503(response: requests.Response) -> bool:
    error = response.json()["error"]
    return error["code"] == "database_unavailable" and "retry" in error["message"]


# --- PostgreSQL restarted while uploads run ---------------------------------------------------
def test_postgres_restart_under_uploads_gives_503_or_success_and_retries_store_one_version_each(
    live_hub, lora_dir, tmp_path
):
    hub = live_hub
    hub.start()
    count = 60
    folders = []
    for i in range(count):
        folder = tmp_path / f"up-{i}"
        folder.mkdir()
        for path in lora_dir.iterdir():
            shutil.copy(path, folder / path.name)
        (folder / "README.md").write_text(f"# up-{i}\n\nUpload {i} of the restart test.\n")  # a blob of its own
        folders.append(folder)
        _create_adapter(hub, f"up-{i}")

    results: dict[int, requests.Response] = {}
    finished: dict[int, float] = {}  # when each answer came (for the README's recovery table)
    done = threading.Event()
    failures: list[BaseException] = []

    def uploader() -> None:
        try:
            for i, folder in enumerate(folders):
                if done.is_set():
                    return
                files = [("files", (name, content)) for name, content in folder_files(folder).items()]
                results[i] = requests.post(
                    f"{hub.url}/api/v1/adapters/alice/up-{i}/versions/", files=files,
                    headers={"Authorization": f"Bearer {hub.token}"}, timeout=WAIT,
                )  # fmt: skip
                finished[i] = time.monotonic()
                time.sleep(0.2)
        except BaseException as exc:  # surfaced by the main thread
            failures.append(exc)

    def statuses(code: int) -> list[int]:
        return [i for i, r in list(results.items()) if r.status_code == code]

    thread = threading.Thread(target=uploader, daemon=True)
    thread.start()
    try:
        _wait_for("two uploads", lambda: len(statuses(201)) >= 2 or failures)
        before = len(results)
        hub.db.stop()  # down long enough for some uploads to meet it
        _wait_for("an upload answered while the database is down", lambda: len(results) > before or failures)
        hub.db.start()
        started = time.monotonic()
        ok = len(statuses(201))
        _wait_for("uploads after the start", lambda: len(statuses(201)) >= ok + 2 or failures)
        ok = len(statuses(201))
        hub.db.restart()  # the plain restart, under running uploads
        restarted = time.monotonic()
        _wait_for("uploads after the restart", lambda: len(statuses(201)) >= ok + 2 or failures)
    finally:
        done.set()
        thread.join(timeout=WAIT)
    assert not failures, failures
    assert not thread.is_alive()

    unavailable = statuses(503)
    assert unavailable, "no upload met the stopped database"
    first_ok = {t: min(finished[i] for i in statuses(201) if finished[i] > t) for t in (started, restarted)}
    print(
        f"\nfault: postgres stop/start, restart: {len(unavailable)} of {len(results)} uploads got 503; "
        f"first 201 {first_ok[started] - started:.2f} s after the start, "
        f"{first_ok[restarted] - restarted:.2f} s after the restart"
    )
    for i, response in results.items():
        assert response.status_code in (201, 503), (i, response.status_code, response.text, hub.log_tail())
        if response.status_code == 503:
            assert _is_clear_503(response), response.text
            assert response.headers["Retry-After"]

    # The client retries 503s itself; every refused upload goes through now, once.
    with Client(hub.url, hub.token, backoff=0.2, progress=False) as client:
        for i in unavailable:
            client.push(folders[i], f"alice/up-{i}", create=False)
    for i in results:
        assert hub.versions(f"up-{i}") == [1], i

    # A blob written before the database went away may have no row; the collector takes it.
    hub.manage("hub_gc_blobs", "--grace", "0")
    rows = {sha for (sha,) in hub.db.sql("SELECT sha256 FROM hub_blob")}
    used = {sha for (sha,) in hub.db.sql("SELECT DISTINCT blob_id FROM hub_versionfile")}
    files = hub.blob_files()
    assert files <= rows, f"blobs without a row: {files - rows}"
    assert used <= files, f"rows without content: {used - files}"


# --- the web process killed mid-upload and mid-stream -------------------------------------------
@pytest.fixture(scope="module")
def big_lora_dir(tiny_base_dir, tmp_path_factory) -> Path:
    """A LoRA of about 16 MB: spooled to a temp file on upload, and more than the socket
    buffers hold on download."""
    from peft import LoraConfig

    from tests.factories import save_adapter

    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    return save_adapter(
        tiny_base_dir,
        tmp_path_factory.mktemp("big-lora"),
        LoraConfig(r=2048, lora_alpha=16, target_modules=modules, task_type="CAUSAL_LM"),
    )


def _multipart(files: dict[str, bytes]) -> tuple[bytes, str]:
    request = requests.Request("POST", "http://x/", files=[("files", item) for item in files.items()]).prepare()
    return request.body, request.headers["Content-Type"]


def test_web_process_killed_mid_upload_and_mid_download_stores_nothing_and_the_retry_makes_one_version(
    live_hub, big_lora_dir
):
    hub = live_hub
    hub.start()
    _create_adapter(hub, "big")
    before = hub.counts()

    # Mid-upload: half the body sent, the server spooling it to an unnamed file under the
    # upload folder (config/asgi.py), then SIGKILL.
    body, content_type = _multipart(folder_files(big_lora_dir))
    assert len(body) > 8 * 1024**2
    sock = socket.create_connection(("127.0.0.1", hub.port), timeout=WAIT)
    sock.sendall(
        (
            "POST /api/v1/adapters/alice/big/versions/ HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{hub.port}\r\nAuthorization: Bearer {hub.token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
    )
    half = len(body) // 2
    for start in range(0, half, 64 * 1024):
        sock.sendall(body[start : min(start + 64 * 1024, half)])
    _wait_for("the server to spool the upload", hub.spooling)
    hub.kill()
    killed = time.monotonic()
    sock.close()

    assert hub.counts() == before  # no version, blob row, file row, audit or outbox row
    assert hub.blob_files() == set()
    assert hub.temp_files() == []  # the spool had no name: the killed process left nothing behind

    hub.start()
    with Client(hub.url, hub.token, backoff=0.2, progress=False) as client:
        pushed = client.push(big_lora_dir, "alice/big", create=False)
    print(
        f"\nfault: web killed mid-upload: the retried push stored v1 {time.monotonic() - killed:.2f} s after the kill"
    )
    assert (pushed.version, pushed.created, pushed.tries) == (1, True, 1)
    assert hub.versions("big") == [1]

    # Mid-download: the client reads a little, the server is killed with the rest unsent.
    stored = hub.counts()
    url = f"{hub.url}/api/v1/adapters/alice/big/versions/1/files/adapter_model.safetensors"
    size = (big_lora_dir / "adapter_model.safetensors").stat().st_size
    received = 0
    with requests.get(url, headers={"Authorization": f"Bearer {hub.token}"}, stream=True, timeout=(10, 30)) as r:
        assert r.status_code == 200
        chunks = r.iter_content(64 * 1024)
        received += len(next(chunks))
        time.sleep(1)  # the server fills the socket buffers and blocks
        hub.kill()
        killed = time.monotonic()
        with pytest.raises(requests.RequestException):
            for chunk in chunks:
                received += len(chunk)
        print(
            f"fault: web killed mid-download: the client's read failed {time.monotonic() - killed:.2f} s after the kill"
        )
    assert received < size
    assert hub.counts() == stored
    hub.start()
    assert hub.versions("big") == [1]
    response = requests.get(url, headers={"Authorization": f"Bearer {hub.token}"}, timeout=WAIT)
    assert response.content == (big_lora_dir / "adapter_model.safetensors").read_bytes()
    print(f"fault: web killed mid-download: whole file served again {time.monotonic() - killed:.2f} s after the kill")
