#!/usr/bin/env bash
# Entry point of the pefthub image. The first argument picks the role:
#   web     wait for the database, migrate, install the bundled base model, serve (gunicorn, ASGI)
#   worker  wait until the database is migrated, run the Celery worker
#   engine  wait until the database is migrated, run the vLLM engine (docker/Dockerfile.vllm)
#   other   run as given (`docker compose run --rm web python manage.py shell`)
# Arguments after `web` or `worker` go to gunicorn or celery.
#
# Knobs (docker/env/hub.env.example documents them):
#   PEFTHUB_WAIT_SECONDS        how long to wait for the database / migrations (300)
#   PEFTHUB_INSTALL_BASE_MODEL  0 to skip hub_install_base_model at web start (1)
#   PEFTHUB_BUILT_STATIC        static files collected at build time (set by the Dockerfile)
#   PEFTHUB_ROLE_FILE           where the role is noted for docker/healthcheck.py (/tmp/pefthub-role)
set -euo pipefail

cd "$(dirname "$0")/.."

# Read by docker/healthcheck.py: the container-local /tmp is per container.
ROLE_FILE="${PEFTHUB_ROLE_FILE:-/tmp/pefthub-role}"

log() {
    printf '%s entrypoint: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# wait_for database|migrations: until the database accepts connections (and, for
# `migrations`, until no migration is left to apply), or PEFTHUB_WAIT_SECONDS pass.
wait_for() {
    python - "$1" <<'PY'
import os
import sys
import time

import django

django.setup()

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.utils import DatabaseError

what = sys.argv[1]
timeout = float(os.environ.get("PEFTHUB_WAIT_SECONDS", "300"))
deadline = time.monotonic() + timeout
next_report = 0.0
while True:
    try:
        connection.ensure_connection()
        if what == "migrations":
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if pending:
                raise LookupError(f"{len(pending)} migrations are not applied yet (the web role applies them)")
        break
    except (DatabaseError, LookupError) as error:
        connection.close()
        now = time.monotonic()
        if now > deadline:
            sys.exit(f"entrypoint: gave up after {timeout:.0f} s waiting for the {what}: {error}")
        if now >= next_report:
            print(f"entrypoint: waiting for the {what}: {str(error).strip()}", file=sys.stderr, flush=True)
            next_report = now + 10
        time.sleep(1)
PY
}

# STATIC_ROOT is $PEFTHUB_DATA_DIR/static. The image ships it as a link to the files
# collected at build time; a volume made before that link existed, or a bind mount, gets
# the link here. It only ever holds collectstatic's output, so replacing it loses nothing.
link_static() {
    local root="${PEFTHUB_DATA_DIR:?PEFTHUB_DATA_DIR is not set}/static"
    local built="${PEFTHUB_BUILT_STATIC:-}"
    if [[ -z "$built" || ! -f "$built/staticfiles.json" ]]; then
        log "no static files collected at build time; collecting into $root"
        python manage.py collectstatic --noinput --verbosity 0
        return
    fi
    if [[ "$(readlink -- "$root" || true)" == "$built" ]]; then
        return
    fi
    log "linking $root to the static files built into the image"
    # -T: should another process have made the folder again meanwhile, fail, not nest.
    if ! { rm -rf -- "$root" && ln -sT -- "$built" "$root"; }; then
        log "could not link $root; collecting into it instead"
        python manage.py collectstatic --noinput --verbosity 0
    fi
}

if (($# == 0)); then
    set -- web
fi
role="$1"
shift
case "$role" in
web)
    printf 'web\n' >"$ROLE_FILE"
    wait_for database
    python manage.py migrate --noinput
    case "${PEFTHUB_INSTALL_BASE_MODEL:-1}" in
    0 | false | False | no)
        log "PEFTHUB_INSTALL_BASE_MODEL=${PEFTHUB_INSTALL_BASE_MODEL}: not installing the base model"
        ;;
    *)
        # Idempotent: once converted, this only checks the marker file and the registry row.
        python manage.py hub_install_base_model
        ;;
    esac
    link_static
    exec gunicorn --config docker/gunicorn.conf.py config.asgi:application "$@"
    ;;
worker)
    printf 'worker\n' >"$ROLE_FILE"
    wait_for migrations
    # One task at a time: an evaluation loads a model and may use every core. --beat runs
    # the periodic tasks (the event outbox, the reconcilers): one worker container only.
    exec celery -A config worker --beat --queues default,evaluation,downloads --concurrency 1 \
        --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
engine)
    # The vLLM serving engine (docker/Dockerfile.vllm): supervised, with the live adapters
    # reloaded after every (re)start. It needs the base model the web role installs, so it
    # exits until that is registered, and Compose restarts it.
    printf 'engine\n' >"$ROLE_FILE"
    wait_for migrations
    exec python manage.py serving_engine "$@"
    ;;
*)
    exec "$role" "$@"
    ;;
esac
