"""Commits as ``huggingface_hub`` makes them: the preupload check, then the NDJSON commit.

One commit makes one version: the parent version's files, plus the commit's additions,
minus its deletions, through the same upload service (and so the same validation and
messages) as a REST upload. A refused commit leaves nothing: no version, no blob, and the
LFS objects it named are dropped from staging.

Upload modes (``POST .../preupload/{rev}``): huggingface_hub 2.4 sends every ``lfs`` file
through Xet whenever ``hf_xet`` is installed (a default dependency), whatever the server
says; only ``regular`` files bypass it. So by default every file is ``regular`` (sent
base64 inside the commit), which works with every client. With
``PEFTHUB_HF_LFS_THRESHOLD`` set, files of that size and more are ``lfs``, for clients
without Xet (``HF_HUB_DISABLE_XET=1``): they go through :mod:`hub.hf.lfs`.

The commit (``POST .../commit/{rev}``, ``application/x-ndjson``): a ``header`` line
(``summary``, ``description``, optional ``parentCommit``), then ``file`` (base64),
``lfsFile`` (an oid staged for this adapter or a file of the parent), ``deletedFile`` and
``deletedFolder`` lines. Commits go to ``main`` (the newest version). A ``parentCommit``
that is not the newest version's commit is a 412, as on the Hub.

Training state: ``Trainer(push_to_hub=True)`` uploads its whole output folder, which holds
more than the adapter: ``training_args.bin`` (a pickle, which an upload refuses),
``checkpoint-*/`` and ``last-checkpoint/`` folders (optimizer, scheduler, RNG state) and
``runs/`` (TensorBoard). The preupload answers ``shouldIgnore`` for these (what the Hub
answers for a ``.gitignore``d file), so the client leaves them out of the commit, and a
commit that sends one anyway has it dropped: the push keeps its adapter instead of being
refused for a file that was never part of it.
"""

from __future__ import annotations

import fnmatch
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import BinaryIO

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from hub import selectors, services
from hub.cards import CardInput
from hub.exceptions import HubError, NotFound, StaleParent
from hub.models import Adapter, AdapterVersion
from hub.storage.blobstore import blob_open

from . import lfs, ndjson
from .protocol import Caller
from .writes import hf_write, json_body, repo_url, writable_adapter

BRANCHES = ("main", "latest")
# What a training run writes beside the adapter (see the module docstring).
TRAINING_STATE_FOLDERS = ("checkpoint-*", "last-checkpoint", "runs")
TRAINING_STATE_FILES = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")


def is_training_state(path: str) -> bool:
    """Whether ``path`` is a training run's state rather than part of the adapter."""
    top, _, rest = path.partition("/")
    if rest:
        return any(fnmatch.fnmatchcase(top, pattern) for pattern in TRAINING_STATE_FOLDERS)
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in TRAINING_STATE_FILES)


def _parent(adapter: Adapter, revision: str) -> AdapterVersion | None:
    if revision not in BRANCHES:
        raise HubError(
            f"commits go to `main` (each makes a new version), not `{revision}`; "
            "move other aliases with the REST API (PUT /api/v1/adapters/{ns}/{name}/aliases/{alias}/)"
        )
    latest = adapter.latest_version
    if latest is None:
        return None
    return selectors.version_resolve(adapter=adapter, ref=str(latest.number))


def _target(
    request: HttpRequest, caller: Caller, namespace: str, name: str, revision: str
) -> tuple[Adapter, AdapterVersion | None]:
    """The adapter a preupload or commit writes to, and the version it builds on."""
    adapter = writable_adapter(caller, namespace, name)
    if request.GET.get("create_pr"):
        raise HubError("pefthub has no pull requests: commit to `main` (create_pr=False)")
    return adapter, _parent(adapter, revision)


def _upload_mode(size: int) -> str:
    threshold = settings.PEFTHUB_HF_LFS_THRESHOLD
    return "lfs" if threshold is not None and size >= threshold else "regular"


@hf_write("POST")
def preupload(request: HttpRequest, caller: Caller, namespace: str, name: str, revision: str):
    _, parent = _target(request, caller, namespace, name, revision)
    current = {f.path: f.blob_id for f in parent.files.all()} if parent else {}
    answers = []
    for entry in json_body(request).get("files") or []:
        path, size = str(entry.get("path", "")), entry.get("size")
        if not isinstance(size, int) or size < 0:
            raise HubError(f"`{path}`: size must be a number of bytes")
        mode = _upload_mode(size)
        # The client skips a file whose oid it computes the same (sha256 for lfs files;
        # a git sha1 for regular ones, which the hub does not keep: those are always sent).
        oid = current.get(path) if mode == "lfs" else None
        ignore = is_training_state(path)
        answers.append({"path": path, "uploadMode": mode, "shouldIgnore": ignore, "oid": oid})
    return JsonResponse({"files": answers})


@dataclass
class Commit:
    title: str = ""
    description: str = ""
    parent_commit: str | None = None
    added: dict[str, BinaryIO] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    lfs_oids: dict[str, str] = field(default_factory=dict)  # path -> oid
    deleted_files: list[str] = field(default_factory=list)
    deleted_folders: list[str] = field(default_factory=list)
    dropped_oids: list[str] = field(default_factory=list)  # LFS objects of training state, left out


def _parse(request: HttpRequest, stack: ExitStack) -> Commit:
    commit = Commit()
    limit = settings.PEFTHUB_MAX_UPLOAD_BYTES * 4 // 3 + 1024**2
    for item, spooled in ndjson.items(request, limit=limit, stack=stack):
        key, value = item.get("key"), item.get("value") or {}
        path = str(value.get("path", ""))
        if key == "header":
            commit.title = str(value.get("summary") or "")
            commit.description = str(value.get("description") or "")
            commit.parent_commit = value.get("parentCommit")
        elif key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(f"`{path}`: send file content base64-encoded (encoding: base64)")
            handle, size = spooled or ndjson.decode(str(value.get("content") or ""), stack)
            commit.added[path], commit.sizes[path] = handle, size
        elif key == "lfsFile":
            commit.lfs_oids[path] = str(value.get("oid", ""))
        elif key == "deletedFile":
            commit.deleted_files.append(path)
        elif key == "deletedFolder":
            commit.deleted_folders.append(path.rstrip("/"))
        else:
            raise HubError(f"commit lines of kind `{key}` are not supported")
    for path in [p for p in [*commit.added, *commit.lfs_oids] if is_training_state(p)]:
        commit.added.pop(path, None)
        commit.sizes.pop(path, None)
        if path in commit.lfs_oids:
            commit.dropped_oids.append(commit.lfs_oids.pop(path))
    return commit


def _files(adapter: Adapter, parent: AdapterVersion | None, commit: Commit, stack: ExitStack):
    """The new version's files: the parent's, minus deletions, plus additions."""
    current = {f.path: f for f in parent.files.all()} if parent else {}
    for path in commit.deleted_files:
        if path not in current:
            raise NotFound(
                f"A file with this name doesn't exist: `{path}` is not in the newest version", code="entry_not_found"
            )
        del current[path]
    for folder in commit.deleted_folders:
        for path in [p for p in current if p.startswith(f"{folder}/")]:
            del current[path]
    files: dict[str, BinaryIO] = {}
    sizes: dict[str, int] = {}
    for path, entry in current.items():
        files[path] = stack.enter_context(blob_open(entry.blob_id))
        sizes[path] = entry.blob.size
    for path, oid in commit.lfs_oids.items():
        staged = lfs.staged_size(adapter.pk, oid)
        if staged is not None:
            files[path], sizes[path] = stack.enter_context(lfs.staged_open(adapter.pk, oid)), staged
            continue
        known = next((f for f in (parent.files.all() if parent else []) if f.blob_id == oid), None)
        if known is None:
            raise HubError(f"`{path}`: LFS object {oid} was not uploaded; upload it through the LFS batch API first")
        files[path], sizes[path] = stack.enter_context(blob_open(oid)), known.blob.size
    files.update(commit.added)
    sizes.update(commit.sizes)
    return files, sizes


def _card(parent: AdapterVersion | None, commit: Commit) -> CardInput:
    """What the REST upload's metadata told about the parent and the files cannot say again."""
    card = CardInput(commit_title=commit.title, commit_description=commit.description)
    if parent is None:
        return card
    if "adapter_config.json" not in commit.added and "adapter_config.json" not in commit.lfs_oids:
        card.base_model = parent.base_model.name
    card.training_time_seconds = parent.training_time_seconds
    card.training_hardware = parent.training_hardware
    card.num_training_examples = parent.num_training_examples
    card.training_run_url = parent.training_run_url
    card.quantization_bits = parent.quantization_bits
    card.quantization_type = parent.quantization_type
    card.parent = parent.parent_ref or None
    return card


@hf_write("POST")
def commit(request: HttpRequest, caller: Caller, namespace: str, name: str, revision: str):
    adapter, parent = _target(request, caller, namespace, name, revision)
    with ExitStack() as stack:
        parsed = _parse(request, stack)
        try:
            head = selectors.version_commit_sha(parent) if parent else None
            if parsed.parent_commit is not None and parsed.parent_commit != head:
                raise StaleParent(
                    f"A commit has happened since {parsed.parent_commit[:12]}: "
                    f"{adapter.full_name} is now at {head or 'no version'}; fetch it and commit again"
                )
            files, sizes = _files(adapter, parent, parsed, stack)
            version, _ = services.adapter_version_create(
                adapter=adapter,
                user=caller.user,
                files=files,
                sizes=sizes,
                card=_card(parent, parsed),
                based_on=parent,
            )
        finally:
            stack.close()
            lfs.staged_discard(adapter.pk, [*parsed.lfs_oids.values(), *parsed.dropped_oids])
    sha = selectors.version_commit_sha(version)
    return JsonResponse(
        {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{repo_url(request, adapter)}/commit/{sha}",
            "hookOutput": "",
            "version": version.number,
        }
    )


@hf_write("POST", token=False)
def validate_yaml(request: HttpRequest, caller: Caller):
    """``POST /api/validate-yaml``: the client checks a README's front matter before a commit."""
    import yaml

    content = str(json_body(request).get("content") or "")
    errors = []
    if content.startswith("---"):
        end = content.find("\n---", 3)
        try:
            front = yaml.safe_load(content[3:end] if end >= 0 else "")
        except yaml.YAMLError as exc:
            errors.append({"message": f"README.md's front matter is not valid YAML: {exc}"})
        else:
            if end < 0 or not isinstance(front, (dict, type(None))):
                errors.append({"message": "README.md's front matter must be a YAML mapping between `---` lines"})
    return JsonResponse({"errors": errors, "warnings": []}, status=400 if errors else 200)
