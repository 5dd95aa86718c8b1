"""Staff register a suite written as suite.json + JSONL over REST; bad suites are refused
with a message that says what to fix, and nothing of them is stored."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from evaluator.models import Suite
from evaluator.suite_kinds import KINDS
from evaluator.suites_registry import tasks_folder
from tests.evaluator.suite_samples import tar_of, write_suite
from tests.factories import MemberFactory, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def suites_dir(settings, tmp_path) -> Path:
    settings.PEFTHUB_SUITES_DIR = tmp_path / "suites"
    return settings.PEFTHUB_SUITES_DIR


@pytest.fixture
def staff_client(db):
    return client_for(MemberFactory(username="staffer", is_staff=True))


def post(client, archive):
    return client.post("/api/v1/suites/", {"archive": archive}, format="multipart")


def stored_folders(suites_dir: Path) -> list[str]:
    """Suite folders kept on disk (the staging area is empty between uploads)."""
    if not suites_dir.exists():
        return []
    incoming = suites_dir / "_incoming"
    assert not incoming.exists() or not any(incoming.iterdir()), "a staging folder was left behind"
    return sorted(p.name for p in suites_dir.iterdir() if not p.name.startswith("_"))


def test_a_data_only_suite_registers_over_rest(staff_client, shipped_suites, suites_dir, tmp_path):
    folder = write_suite(tmp_path / "quarrow")
    response = post(staff_client, tar_of(folder, top="quarrow"))

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["slug"], body["version"], body["role"]) == ("quarrow-rules", "1.0.0", "domain")
    assert body["tasks"] == ["quarrow_mc", "quarrow_qa"]
    assert body["general_suite"] == str(shipped_suites["general"])
    assert body["policy"]["primary_metrics"] == {"quarrow_mc": "acc", "quarrow_qa": "answer_match"}
    assert body["registered_by"] == "staffer" and body["created_at"]
    suite = Suite.objects.get(slug="quarrow-rules")
    assert suite.active and Path(suite.path).parent == suites_dir
    assert sorted(p.name for p in Path(suite.path).iterdir()) == [
        "corpus.jsonl", "facts.jsonl", "suite.json", "test.jsonl", "train.jsonl"
    ]  # fmt: skip

    # The hub wrote the lm-eval tasks: one YAML per task, the one scoring module, the questions.
    generated = tasks_folder(Path(suite.path))
    assert sorted(p.name for p in generated.iterdir()) == [
        "pefthub_tasks.py", "quarrow_mc.yaml", "quarrow_qa.yaml", "test.jsonl"
    ]  # fmt: skip
    qa = yaml.load((generated / "quarrow_qa.yaml").read_text(), Loader=yaml.BaseLoader)
    assert qa["output_type"] == "generate_until" and qa["generation_kwargs"]["max_gen_toks"] == "16"
    assert qa["generation_kwargs"]["until"] == ["\n"]

    # The same upload again is the same suite; its content is stored once.
    again = post(staff_client, tar_of(folder))
    assert again.status_code == 200 and again.json()["content_hash"] == body["content_hash"]
    assert Suite.objects.filter(slug="quarrow-rules").count() == 1
    assert stored_folders(suites_dir) == [Path(suite.path).name]


def test_a_new_version_retires_the_older_one(staff_client, shipped_suites, suites_dir, tmp_path):
    first = post(staff_client, tar_of(write_suite(tmp_path / "v1")))
    second = post(staff_client, tar_of(write_suite(tmp_path / "v2", version="1.1.0", name="Quarrow, 2nd edition")))
    assert (first.status_code, second.status_code) == (201, 201)
    assert {s.version: s.active for s in Suite.objects.filter(slug="quarrow-rules")} == {"1.0.0": False, "1.1.0": True}


def test_other_content_under_a_registered_version_is_refused(staff_client, shipped_suites, suites_dir, tmp_path):
    assert post(staff_client, tar_of(write_suite(tmp_path / "a"))).status_code == 201
    changed = write_suite(tmp_path / "b", description="Other words, same version.")
    response = post(staff_client, tar_of(changed))
    assert response.status_code == 409
    assert "bump `version` in suite.json" in response.json()["error"]["message"]
    assert len(stored_folders(suites_dir)) == 1


def test_only_staff_register_suites(alice_client, anon_client, shipped_suites, suites_dir, tmp_path):
    folder = write_suite(tmp_path / "s")
    assert post(anon_client, tar_of(folder)).status_code == 401
    denied = post(alice_client, tar_of(folder))
    assert (
        denied.status_code == 403 and "registering a suite is for staff users only" in denied.json()["error"]["message"]
    )
    assert not Suite.objects.filter(slug="quarrow-rules").exists() and stored_folders(suites_dir) == []


def _rewrite(folder: Path, name: str, edit) -> None:
    path = folder / name
    if name.endswith(".jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))
    else:
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _set_row(index: int, **changes):
    return lambda rows: [({**r, **changes} if i == index else r) for i, r in enumerate(rows)]


def _drop_key(index: int, key: str):
    return lambda rows: [({k: v for k, v in r.items() if k != key} if i == index else r) for i, r in enumerate(rows)]


BAD_SUITES = {
    "bad JSON line": (
        lambda f: (f / "test.jsonl").write_text((f / "test.jsonl").read_text().replace('"q3",', '"q3"', 1)),
        422,
        "test.jsonl line 3 is not valid JSON",
    ),
    "missing question": (
        lambda f: _rewrite(f, "test.jsonl", _drop_key(1, "question")),
        422,
        "test.jsonl line 2: `question` must be a non-empty string",
    ),
    "missing answer": (
        lambda f: _rewrite(f, "test.jsonl", _drop_key(3, "answer")),
        422,
        "test.jsonl line 4: `answer` must be a non-empty string",
    ),
    "label out of range": (
        lambda f: _rewrite(f, "test.jsonl", _set_row(4, label=2)),
        422,
        "test.jsonl line 5: `label` is 2, but there are 2 choices (0 to 1)",
    ),
    "label not an integer": (
        lambda f: _rewrite(f, "test.jsonl", _set_row(0, label="b")),
        422,
        "test.jsonl line 1: `label` must be the index of the right choice",
    ),
    "unknown task kind": (
        lambda f: _rewrite(f, "suite.json", lambda m: {**m, "tasks": [{"name": "quarrow_x", "kind": "essay"}]}),
        422,
        f"tasks[0].kind is 'essay'; use one of: {', '.join(KINDS)}",
    ),
    "unknown option": (
        lambda f: _rewrite(
            f, "suite.json", lambda m: {**m, "tasks": [{"name": "q", "kind": "multiple_choice", "max_new_tokens": 8}]}
        ),
        422,
        "tasks[0]: `max_new_tokens` is not an option of kind multiple_choice",
    ),
    "corpus row without text": (
        lambda f: _rewrite(f, "corpus.jsonl", _drop_key(2, "text")),
        422,
        "corpus.jsonl line 3: `text` must be a non-empty string",
    ),
    "no corpus for a domain suite": (
        lambda f: (f / "corpus.jsonl").unlink(),
        422,
        "a domain suite needs a retrieval corpus",
    ),
    "train row without answer": (
        lambda f: _rewrite(f, "train.jsonl", _drop_key(0, "answer")),
        422,
        "train.jsonl line 1: `answer` must be a non-empty string",
    ),
    "general suite not registered": (
        lambda f: _rewrite(f, "suite.json", lambda m: {**m, "general_suite": "nowhere"}),
        422,
        "measures forgetting on `nowhere`, which is not registered",
    ),
}


@pytest.mark.parametrize("case", BAD_SUITES, ids=list(BAD_SUITES))
def test_a_bad_suite_is_refused_with_what_to_fix_and_nothing_stored(
    case, staff_client, shipped_suites, suites_dir, tmp_path
):
    damage, status, message = BAD_SUITES[case]
    folder = write_suite(tmp_path / "bad")
    damage(folder)
    before = Suite.objects.count()

    response = post(staff_client, tar_of(folder))

    assert response.status_code == status, response.json()
    assert message in response.json()["error"]["message"]
    assert Suite.objects.count() == before
    assert stored_folders(suites_dir) == []


def _archive(members: list[tarfile.TarInfo], contents: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(contents[info.name]) if info.isfile() else None)
    buffer.seek(0)
    buffer.name = "suite.tar"
    return buffer


def _member(name: str, content: bytes = b"{}", kind: bytes = tarfile.REGTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(content) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "/etc/passwd"
    return info, content


@pytest.mark.parametrize(
    ("name", "kind", "status", "message"),
    [
        ("../suite.json", tarfile.REGTYPE, 422, "member `../suite.json` points outside the suite folder"),
        ("/etc/suite.json", tarfile.REGTYPE, 422, "member `/etc/suite.json` points outside the suite folder"),
        ("passwd.jsonl", tarfile.SYMTYPE, 422, "`passwd.jsonl` is a link or special file"),
        ("utils.py", tarfile.REGTYPE, 422, "`utils.py` is not suite data"),
        ("quarrow_mc.yaml", tarfile.REGTYPE, 422, "`quarrow_mc.yaml` is not suite data"),
        ("deep/test.jsonl", tarfile.REGTYPE, 422, "`deep/test.jsonl` is in a subfolder"),
    ],
)
def test_an_unsafe_archive_is_refused(name, kind, status, message, staff_client, shipped_suites, suites_dir, tmp_path):
    folder = write_suite(tmp_path / "s")
    members, contents = [], {}
    for path in sorted(folder.iterdir()):
        info, data = _member(path.name, path.read_bytes())
        members.append(info)
        contents[path.name] = data
    info, data = _member(name, b"print('hi')\n", kind)
    members.append(info)
    contents[name] = data

    response = post(staff_client, _archive(members, contents))

    assert response.status_code == status, response.json()
    assert message in response.json()["error"]["message"]
    assert stored_folders(suites_dir) == [] and not Suite.objects.filter(slug="quarrow-rules").exists()


def test_a_suite_over_the_size_limit_is_refused(staff_client, shipped_suites, suites_dir, settings, tmp_path):
    settings.PEFTHUB_SUITE_MAX_BYTES = 4096
    folder = write_suite(tmp_path / "s")
    (folder / "notes.txt").write_text("x" * 5000)
    response = post(staff_client, tar_of(folder))
    assert response.status_code == 413
    assert "the limit for a suite" in response.json()["error"]["message"]
    assert stored_folders(suites_dir) == []


def test_not_a_tar_is_refused(staff_client, suites_dir):
    archive = io.BytesIO(b"this is not a tar")
    archive.name = "suite.tar"
    response = post(staff_client, archive)
    assert response.status_code == 422
    assert "not a readable tar or tar.gz" in response.json()["error"]["message"]


def test_hand_written_yaml_suites_still_register_from_a_folder(shipped_suites, tmp_path, settings):
    """Suites that bring their own lm-eval YAML (and helpers) are installed from a folder on
    the server, and run from that folder as before."""
    from evaluator.services import suite_register

    folder = write_suite(tmp_path / "own", slug="own-yaml", tasks=["own_mc"])
    (folder / "own_mc.yaml").write_text(
        "task: own_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: test.jsonl\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{question}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: label\n"
    )
    suite = suite_register(folder=folder)
    assert suite.tasks == ["own_mc"] and tasks_folder(folder) == folder

    missing = write_suite(tmp_path / "missing", slug="own-yaml-2", tasks=["nowhere_mc"])
    with pytest.raises(Exception, match=r"lists task `nowhere_mc`, but no YAML in the suite defines it"):
        suite_register(folder=missing)
