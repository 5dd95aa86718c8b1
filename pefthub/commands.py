"""What each ``pefthub`` subcommand does, and the exit codes it ends with (:mod:`pefthub.cli` parses)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from .client import Client
from .config import TOKEN_ENV, save_token
from .errors import AuthenticationError, EvaluationTimeout
from .repo import parse_repo
from .results import EvaluationStatus
from .text import human_size, table

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
# What `--wait` ends with, so that a training pipeline can gate on the verdict.
EXIT_OUTCOME = {"accepted": EXIT_OK, "rejected": 3, "failed": 4, "cancelled": 5}
EXIT_TIMEOUT = 6
EXIT_INTERRUPTED = 130
EXIT_HELP = """exit codes:
  0    done (with --wait: the version was accepted)
  1    the hub refused the request or could not be reached
  2    usage error
  3    --wait: the version was rejected by its evaluation
  4    --wait: its evaluation failed (no verdict)
  5    --wait: its evaluation was cancelled (no verdict)
  6    --wait: no verdict before --timeout
  130  interrupted"""


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if args.metadata:
        raw = args.metadata
        if raw.startswith("@"):
            raw = Path(raw[1:]).read_text()
        try:
            metadata = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"--metadata is not JSON: {exc}") from None
        if not isinstance(metadata, dict):
            raise ValueError("--metadata must be a JSON object")
    if args.task_tag:
        metadata["task_tags"] = [*metadata.get("task_tags", []), *args.task_tag]
    if args.dataset:
        metadata["datasets"] = [*metadata.get("datasets", []), *args.dataset]
    if args.license:
        metadata["license"] = args.license
    return metadata


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_push(client: Client, args: argparse.Namespace) -> int:
    result = client.push(
        args.folder,
        args.repo,
        base_model=args.base_model,
        metadata=_metadata(args),
        aliases=args.alias or (),
        files=args.file or None,
        private=args.private,
        description=args.description or "",
        progress=False if args.no_progress else None,
    )
    if not args.wait:
        if args.json:
            _print_json({"created": result.created, "url": result.url, **result.data})
        else:
            print(result.summary())
        return EXIT_OK
    if not args.json:
        print(result.summary(), flush=True)
    status = _follow(client, args, result.repo, result.version)
    if args.json:
        _print_json({"created": result.created, "url": result.url, **result.data, "evaluation": status.to_json()})
    return _report_verdict(status, args)


def _follow(client: Client, args: argparse.Namespace, repo: str, ref: str | int | None) -> EvaluationStatus:
    try:
        return client.wait_for_evaluation(
            repo,
            ref,
            timeout=args.timeout or None,
            interval=args.interval,
            progress=False if args.no_progress else None,
        )
    except EvaluationTimeout as exc:
        if not args.json and exc.evaluation is not None:
            print(exc.evaluation.describe())
        raise


def _report_verdict(status: EvaluationStatus, args: argparse.Namespace) -> int:
    if not args.json:
        print(status.describe())
        print(f"verdict: {status.outcome}")
    return EXIT_OUTCOME.get(status.outcome or "", EXIT_ERROR)


def cmd_pull(client: Client, args: argparse.Namespace) -> int:
    result = client.pull(args.repo, args.dest, progress=False if args.no_progress else None)
    kept = len(result.files) - len(result.downloaded)
    print(
        f"{result.repo} v{result.version} -> {result.path} "
        f"({len(result.downloaded)} downloaded" + (f", {kept} already there" if kept else "") + ")"
    )
    return 0


def cmd_ls(client: Client, args: argparse.Namespace) -> int:
    if args.repo:
        versions = client.list_versions(args.repo)
        if args.json:
            _print_json(versions)
            return 0
        rows = [
            [
                f"v{v['version']}",
                v.get("status", "") + (" (deprecated)" if v.get("deprecated") else ""),
                v.get("card", {}).get("method", ""),
                str(v.get("card", {}).get("rank") or ""),
                human_size(v.get("card", {}).get("size_bytes", 0)),
                ",".join(v.get("aliases", [])),
                v.get("created_at", "")[:19].replace("T", " "),
                v.get("content_hash", "")[:12],
            ]
            for v in versions
        ]
        header = ["VERSION", "STATUS", "METHOD", "RANK", "SIZE", "ALIASES", "CREATED", "HASH"]
        print(table(rows, header) if rows else f"{args.repo} has no versions yet")
        return 0
    adapters = list(client.list_adapters(namespace=args.namespace, q=args.query))
    if args.json:
        _print_json(adapters)
        return 0
    rows = []
    for a in adapters:
        latest = a.get("latest") or {}
        card = latest.get("card") or {}
        rows.append(
            [
                a.get("full_name", ""),
                f"v{latest['version']}" if latest else "-",
                latest.get("status", "") if latest else "",
                card.get("method", ""),
                "private" if a.get("private") else "public",
                a.get("updated_at", "")[:19].replace("T", " "),
            ]
        )
    header = ["ADAPTER", "LATEST", "STATUS", "METHOD", "VISIBILITY", "UPDATED"]
    print(table(rows, header) if rows else "no adapters found")
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    if args.wait:
        status = _follow(client, args, args.repo, None)
        if args.json:
            _print_json(status.to_json())
        return _report_verdict(status, args)
    status = client.evaluation_status(args.repo)
    if args.json:
        _print_json(status.to_json())
    else:
        print(status.describe())
    return EXIT_OK


def cmd_alias(client: Client, args: argparse.Namespace) -> int:
    rid = parse_repo(args.repo)
    if args.delete:
        if not args.alias:
            raise ValueError("name the alias to delete: pefthub alias REPO ALIAS --delete")
        client.delete_alias(rid, args.alias)
        print(f"{rid.full_name}: alias {args.alias} deleted")
        return 0
    if args.alias:
        version = args.version or rid.ref
        if not version:
            raise ValueError(f"say which version `{args.alias}` should point at: pefthub alias REPO ALIAS VERSION")
        alias = client.set_alias(rid, args.alias, version)
        print(f"{rid.full_name}: {alias['name']} -> v{alias['version']}")
        return 0
    aliases = client.list_aliases(rid)
    rows = [[a["name"], f"v{a['version']}", a["updated_at"][:19].replace("T", " ")] for a in aliases]
    print(table(rows, ["ALIAS", "VERSION", "UPDATED"]) if rows else f"{rid.full_name} has no aliases")
    return 0


def cmd_login(client: Client, args: argparse.Namespace) -> int:
    token = args.token_value
    if not token:
        if sys.stdin.isatty():
            token = getpass.getpass(f"token for {client.endpoint}: ")
        else:
            token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise ValueError("no token given")
    checked = Client(client.endpoint, token, retries=client.retries, progress=False)
    with checked:
        me = checked.whoami()
    path = save_token(token)
    print(f"logged in to {client.endpoint} as {me['username']}; token saved to {path}")
    return 0


def cmd_whoami(client: Client, args: argparse.Namespace) -> int:
    if not client.token:
        raise AuthenticationError(f"no token: set {TOKEN_ENV}, pass --token or run `pefthub login`", status=None)
    me = client.whoami()
    if args.json:
        _print_json(me)
        return 0
    print(me["username"])
    for ns in me["namespaces"]:
        print(f"  {ns['name']} ({ns['role']})")
    return 0


def cmd_suite_push(client: Client, args: argparse.Namespace) -> int:
    suite, created, skipped = client.push_suite(args.folder)
    if skipped:
        print(f"not sent (not suite data): {', '.join(skipped)}", file=sys.stderr)
    if args.json:
        _print_json(suite)
    else:
        what = "registered" if created else "already registered"
        print(f"{what}: {suite['slug']}@{suite['version']} ({suite['role']}, tasks: {', '.join(suite['tasks'])})")
    return EXIT_OK
