#!/usr/bin/env python
"""Run the hub's benchmarks and print one table per benchmark.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pefthub .venv/bin/python bench/run.py
    python bench/run.py --only upload          # or --only catalog [--adapters 10000]

Never touches the database DATABASE_URL names: on its server it creates a database of
its own (``pefthub_bench``), migrates it, and drops it at the end. Files (blobs, upload
temp files, the Celery filesystem broker) go to a temporary folder that is deleted too.
Without a PostgreSQL DATABASE_URL it says so and uses a temporary SQLite file. Results
are also written to ``bench/results/latest.json``. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import Section, format_table  # noqa: E402

# PEFTHUB_BENCH_DB: another name, so that two checkouts can benchmark on one server at once.
BENCH_DB = os.environ.get("PEFTHUB_BENCH_DB", "pefthub_bench")
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}
RESULTS = Path(__file__).with_name("results") / "latest.json"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Database:
    """The throwaway database the benchmarks run against."""

    url: str
    vendor: str  # "postgresql" or "sqlite"
    admin_conninfo: str | None = None  # PostgreSQL: the server's maintenance database

    def create(self) -> None:
        if self.admin_conninfo is None:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
            if exists:
                log(f"dropping `{BENCH_DB}` left over by an interrupted run")
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))

    def drop(self) -> None:
        if self.admin_conninfo is None:
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))

    def server_version(self) -> str:
        if self.admin_conninfo is None:
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version}"
        import psycopg

        with psycopg.connect(self.admin_conninfo) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


def database_for(url: str, work: Path) -> Database:
    """The bench database next to the one ``url`` names (same server, other name)."""
    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        shown = parts.scheme or "unset"
        log(f"DATABASE_URL is not PostgreSQL ({shown}): using a temporary SQLite file instead")
        return Database(url=f"sqlite:///{work / 'bench.sqlite3'}", vendor="sqlite")
    if parts.path.lstrip("/") == BENCH_DB:
        raise SystemExit(f"DATABASE_URL already names `{BENCH_DB}`, the database this benchmark drops")
    bench = urlunsplit(parts._replace(path=f"/{BENCH_DB}"))
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    return Database(url=bench, vendor="postgresql", admin_conninfo=admin)


def configure_django(db: Database, work: Path) -> None:
    """Point the local settings at the bench database and temporary storage, then set up."""
    data = work / "data"
    (data / "broker" / "queue").mkdir(parents=True)
    (data / "broker" / "processed").mkdir(parents=True)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "DATABASE_URL": db.url,
            "PEFTHUB_DATA_DIR": str(data),
            "STORAGE_URL": f"file://{data / 'blobs'}",
            # Events go to a broker folder nobody reads: no worker of the developer's sees them.
            "CELERY_BROKER_URL": "filesystem://",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            # Production-like: DEBUG off (no per-query logging, no debug pages).
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
            "LOG_LEVEL": "ERROR",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
    )
    import django
    from django.core.management import call_command

    django.setup()
    seconds = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    log(f"migrated `{db.url.rsplit('/', 1)[-1]}` in {time.perf_counter() - seconds:.1f} s")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("django", "djangorestframework", "psycopg", "torch", "peft", "transformers", "safetensors"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _note_load(section: Section) -> None:
    """Other processes on the machine skew p95s; say how busy it was."""
    load = os.getloadavg()
    section.notes.append(f"load average after this benchmark: {load[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    section.details["loadavg"] = load


def write_results(meta: dict[str, Any], sections: dict[str, Section]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, **{key: section.as_dict() for key, section in sections.items()}}
    RESULTS.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pefthub benchmarks (tables, never assertions)")
    parser.add_argument(
        "--only",
        choices=[
            "upload",
            "catalog",
            "serving",
            "evaluation",
            "backends",
            "gateway",
            "dtype",
            "replicas",
            "adapters",
            "servers",
        ],
        help="run one benchmark (gateway, dtype, replicas and adapters, bench/fleet.py, and servers, "
        "bench/servers.py, run only when named)",
    )
    parser.add_argument("--adapters", type=int, default=10_000, help="catalog size (default 10000)")
    parser.add_argument("--repeats", type=int, default=10, help="timed uploads (default 10)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per catalog variant")
    parser.add_argument("--eval-adapters", type=int, default=8, help="adapters in the evaluation bench (default 8)")
    parser.add_argument("--eval-limit", type=int, default=20, help="questions per task in the evaluation bench")
    parser.add_argument("--eval-batch-size", type=int, default=8, help="lm-eval batch size (default 8)")
    parser.add_argument("--streams", type=int, default=32, help="gateway: concurrent streams timed (default 32)")
    parser.add_argument("--idle", type=int, default=200, help="gateway: slow streams held at once (default 200)")
    parser.add_argument("--tokens", type=int, default=64, help="gateway/dtype/replicas: tokens per request")
    parser.add_argument("--fleet-requests", type=int, default=32, help="dtype/replicas: requests (default 32)")
    parser.add_argument("--fleet-adapters", type=int, default=1000, help="adapters: how many live (default 1000)")
    parser.add_argument("--samples", type=int, default=40, help="adapters: cold/warm requests timed (default 40)")
    parser.add_argument("--burst", type=int, default=64, help="servers: requests in the burst (default 64)")
    parser.add_argument("--keep-db", action="store_true", help=f"leave `{BENCH_DB}` for inspection")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="pefthub-bench-"))
    db = database_for(os.environ.get("DATABASE_URL", ""), work)
    meta: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": db.vendor,
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "versions": _versions(),
    }
    sections: dict[str, Section] = {}
    rc = 0
    try:
        meta["server"] = db.server_version()
        db.create()
        configure_django(db, work)
        if args.only in (None, "upload"):
            from bench.upload import run_upload

            sections["upload"] = run_upload(work=work, repeats=args.repeats, log=log)
            _note_load(sections["upload"])
            print("\n" + format_table(sections["upload"]) + "\n", flush=True)
        if args.only in (None, "catalog"):
            from bench.catalog import run_catalog

            sections["catalog"] = run_catalog(n_adapters=args.adapters, requests=args.requests, log=log)
            _note_load(sections["catalog"])
            print("\n" + format_table(sections["catalog"]) + "\n", flush=True)
        if args.only in (None, "serving"):  # bench/serving.py: the real vLLM engine (skipped without vLLM)
            from bench.serving import run_serving

            sections["serving"] = run_serving(work=work, log=log)
            _note_load(sections["serving"])
            print("\n" + format_table(sections["serving"]) + "\n", flush=True)
        if args.only in ("gateway", "dtype", "replicas", "adapters"):  # bench/fleet.py: real vLLM, minutes each
            from bench import fleet

            if args.only == "gateway":
                section = fleet.run_gateway(
                    work=work, log=log, streams=args.streams, idle=args.idle, tokens=args.tokens
                )
            elif args.only == "dtype":
                section = fleet.run_dtype(work=work, log=log, requests=args.fleet_requests, tokens=args.tokens)
            elif args.only == "adapters":
                section = fleet.run_adapters(work=work, log=log, adapters=args.fleet_adapters, samples=args.samples)
            else:
                section = fleet.run_replicas(work=work, log=log, requests=args.fleet_requests, tokens=args.tokens)
            sections[args.only] = section
            _note_load(section)
            print("\n" + format_table(section) + "\n", flush=True)
        if args.only == "servers":  # bench/servers.py: three web servers in front of a fake replica
            from bench.servers import run_servers

            sections["servers"] = run_servers(work=work, log=log, burst=args.burst, streams=args.idle)
            _note_load(sections["servers"])
            print("\n" + format_table(sections["servers"]) + "\n", flush=True)
        if args.only in (None, "evaluation"):
            from bench.evaluation import run_evaluation

            sections["evaluation"] = run_evaluation(
                work=work,
                n_adapters=args.eval_adapters,
                limit=args.eval_limit,
                batch_size=args.eval_batch_size,
                log=log,
            )
            _note_load(sections["evaluation"])
            print("\n" + format_table(sections["evaluation"]) + "\n", flush=True)
        if args.only == "backends":  # hf, vllm and the shared engine: minutes, a vLLM server
            from bench.evaluation import run_backends

            sections["backends"] = run_backends(
                work=work,
                n_adapters=args.eval_adapters,
                limit=args.eval_limit,
                batch_size=args.eval_batch_size,
                log=log,
            )
            _note_load(sections["backends"])
            print("\n" + format_table(sections["backends"]) + "\n", flush=True)
    except Exception:
        rc = 1
        meta["error"] = traceback.format_exc()
        traceback.print_exc()
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if args.keep_db and db.vendor == "postgresql":
            log(f"kept database `{BENCH_DB}` (drop it with: dropdb {BENCH_DB})")
        else:
            db.drop()
        shutil.rmtree(work, ignore_errors=True)

    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    write_results(meta, sections)
    missed = [f"{key}: {row.what}" for key, section in sections.items() for row in section.missed]
    print(f"total {meta['total_seconds']} s; results in {RESULTS.relative_to(ROOT)}")
    print("targets missed: " + ("; ".join(missed) if missed else "none"))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
