"""``pefthub``: push, pull, list, follow and alias adapters from the shell.

Exit codes (``pefthub --help`` lists them too):
0 done (with ``--wait``: the version was accepted); 1 the hub refused or could not be
reached (one line ``error: …`` on stderr); 2 a usage error; with ``--wait``, 3 the
version was rejected, 4 its evaluation failed, 5 its evaluation was cancelled, 6 no
verdict before ``--timeout``; 130 interrupted.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .client import Client
from .config import ENDPOINT_ENV, TOKEN_ENV, save_token
from .errors import AuthenticationError, EvaluationTimeout, PefthubError
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


# --- commands ----------------------------------------------------------------------------------
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


# --- parser --------------------------------------------------------------------------------------
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pefthub",
        description="Push, pull and follow PEFT adapters.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pefthub {__version__}")
    parser.add_argument("--endpoint", help=f"the hub's address (default: ${ENDPOINT_ENV} or http://127.0.0.1:8000)")
    parser.add_argument("--token", help=f"API token (default: ${TOKEN_ENV}, then the one `pefthub login` saved)")
    parser.add_argument("--retries", type=int, default=4, help="retries after a dropped connection (default 4)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "push",
        help="upload an adapter folder as a new version",
        description="Upload an adapter folder as a new version. The card gets what the folder's "
        "training_metadata.json records (training time, hardware, examples, loss, ...); the "
        "options below win over it.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="the folder peft's save_pretrained wrote")
    p.add_argument("repo", help="namespace/name; created when missing")
    p.add_argument("--base-model", help="registered base model (default: the config's base_model_name_or_path)")
    p.add_argument("--metadata", help="card metadata as a JSON object, or @file.json")
    p.add_argument("--task-tag", action="append", help="task tag (repeatable)")
    p.add_argument("--dataset", action="append", help="training dataset (repeatable)")
    p.add_argument("--license", help="license of the adapter, e.g. apache-2.0")
    p.add_argument("--alias", action="append", help="alias to point at the new version (repeatable)")
    p.add_argument("--file", action="append", help="upload only these files of the folder (repeatable)")
    p.add_argument("--private", action="store_true", help="create the adapter private (when it is new)")
    p.add_argument("--description", help="description of the adapter (when it is new)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the version as JSON")
    _wait_arguments(p, "then follow its evaluation to the verdict; the exit code says which (see below)")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("pull", help="download a version")
    p.add_argument("repo", help="namespace/name[@version|@alias|@hash] (default @latest)")
    p.add_argument("dest", nargs="?", help="folder to write (default: the adapter's name)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("ls", help="list adapters, or the versions of one")
    p.add_argument("repo", nargs="?", help="namespace/name: list its versions")
    p.add_argument("--namespace", help="only this namespace's adapters")
    p.add_argument("-q", "--query", help="search text")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser(
        "status",
        help="a version's verdict and evaluation: each suite's progress, arms and decision",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("repo", help="namespace/name[@version] (default @latest)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _wait_arguments(p, "follow the evaluation to the verdict; the exit code says which (see below)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("alias", help="list, set or delete aliases")
    p.add_argument("repo", help="namespace/name")
    p.add_argument("alias", nargs="?", help="alias to set (or delete)")
    p.add_argument("version", nargs="?", help="version it should point at: 3, v3, another alias or a hash")
    p.add_argument("--delete", action="store_true", help="delete the alias")
    p.set_defaults(func=cmd_alias)

    p = sub.add_parser("login", help="check a token and save it for later commands")
    p.add_argument("token_value", nargs="?", metavar="TOKEN", help="the token (default: prompt, or stdin)")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("suite", help="evaluation suites (staff)")
    suite = p.add_subparsers(dest="suite_command", required=True, metavar="SUITE_COMMAND")
    p = suite.add_parser(
        "push",
        help="register a suite folder (suite.json + JSONL); a new version retires the older one",
        description="Register an evaluation suite: suite.json and its JSONL files (test.jsonl, "
        "corpus.jsonl, train.jsonl, facts.jsonl). Staff only. Files that are not suite data "
        "(.json, .jsonl, .md, .txt) are left out and named.",
    )
    p.add_argument("folder", help="the suite's folder")
    p.add_argument("--json", action="store_true", help="print the suite as JSON")
    p.set_defaults(func=cmd_suite_push)

    p = sub.add_parser("whoami", help="the token's user and namespaces")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_whoami)
    return parser


def _wait_arguments(p: argparse.ArgumentParser, wait_help: str) -> None:
    p.add_argument("--wait", action="store_true", help=wait_help)
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=3600.0,
        help="with --wait: give up after this many seconds, exit code 6 (default 3600; 0: no limit)",
    )
    p.add_argument("--interval", type=_seconds, default=5.0, help="with --wait: seconds between checks (default 5)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("give a number of seconds of 0 or more")
    return value


def _setup_logging() -> None:
    logger = logging.getLogger("pefthub")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("pefthub: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _error(message: str) -> None:
    print("error: " + " ".join(message.split()), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging()
    try:
        with Client(args.endpoint, args.token, retries=max(args.retries, 0)) as client:
            return int(args.func(client, args))
    except EvaluationTimeout as exc:
        _error(exc.message)
        return EXIT_TIMEOUT
    except PefthubError as exc:
        _error(exc.message)
        return EXIT_ERROR
    except (ValueError, OSError) as exc:
        _error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
