"""``pefthub``: push, pull, list, follow and alias adapters from the shell.

Exit codes (``pefthub --help`` lists them too):
0 done (with ``--wait``: the version was accepted); 1 the hub refused or could not be
reached (one line ``error: …`` on stderr); 2 a usage error; with ``--wait``, 3 the
version was rejected, 4 its evaluation failed, 5 its evaluation was cancelled, 6 no
verdict before ``--timeout``; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .client import Client
from .commands import (
    EXIT_ERROR,
    EXIT_HELP,
    EXIT_INTERRUPTED,
    EXIT_TIMEOUT,
    cmd_alias,
    cmd_login,
    cmd_ls,
    cmd_pull,
    cmd_push,
    cmd_status,
    cmd_suite_push,
    cmd_whoami,
)
from .config import ENDPOINT_ENV, TOKEN_ENV
from .errors import EvaluationTimeout, PefthubError


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
