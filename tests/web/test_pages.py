"""Every page with the Django test client: what it shows, to whom, and what its forms do."""

from __future__ import annotations

import re

import pytest
from django.test import Client, TestCase

from evaluator.models import EvaluationJob
from hub.models import ApiToken
from tests.web.conftest import KEPT

FORGETS = {"base": 1.0, "adapter": 0.75}  # 25 points lost on the general suite

pytestmark = pytest.mark.django_db

SCRIPT_README = """---
license: apache-2.0
---
# Support bot

Answers **questions** about Acme products.

<script>alert("owned")</script>
<img src="https://tracker.example/pixel.png" onerror="alert(1)">
[click me](javascript:alert(1)) and [docs](https://example.org/docs)
<a href="#" onclick="alert(2)">x</a>

| metric | value |
|---|---|
| acc | 0.9 |
"""


def browser_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def title(response) -> str:
    return re.search(r"<title>(.*?)</title>", response.content.decode(), re.S).group(1).strip()


@pytest.fixture
def catalog(alice, bob, push, evaluate):
    """Three public adapters and a private one, two of them scored."""
    good = push(alice, "alice/support-bot", readme=SCRIPT_README, task_tags=["qa"], num_training_examples=200)
    evaluate(good, {"base": 0.0, "base_rag": 0.75, "adapter": 0.75, "adapter_rag": 0.5}, general=KEPT)
    weak = push(bob, "bob/weak-bot", task_tags=["chat"], license="mit")
    evaluate(weak, {"base": 0.0, "base_rag": 0.75, "adapter": 0.25, "adapter_rag": 0.5}, general=FORGETS)
    push(bob, "bob/unscored", task_tags=["qa"])
    secret = push(alice, "alice/secret-bot", private=True, task_tags=["qa"])
    evaluate(secret, {"base": 0.0, "base_rag": 0.75, "adapter": 1.0, "adapter_rag": 1.0}, general=KEPT)
    return {"good": good, "weak": weak, "secret": secret}


def names(response) -> list[str]:
    return re.findall(r'data-adapter="([^"]+)"', response.content.decode())


# --- home and catalog --------------------------------------------------------------------------
def test_home_shows_recent_public_adapters_and_base_models(catalog):
    response = browser_for().get("/")
    assert response.status_code == 200
    assert title(response) == "PEFT adapter registry · pefthub"
    body = response.content.decode()
    assert "tiny-llama" in body
    assert set(names(response)) == {"alice/support-bot", "bob/weak-bot", "bob/unscored"}


def test_catalog_search_filter_and_private_visibility(catalog, alice, bob):
    anon = browser_for()
    assert set(names(anon.get("/adapters/"))) == {"alice/support-bot", "bob/weak-bot", "bob/unscored"}
    assert set(names(browser_for(bob).get("/adapters/"))) == {"alice/support-bot", "bob/weak-bot", "bob/unscored"}
    assert "alice/secret-bot" in names(browser_for(alice).get("/adapters/"))

    assert names(anon.get("/adapters/", {"q": "weak"})) == ["bob/weak-bot"]
    assert set(names(anon.get("/adapters/", {"task": "qa"}))) == {"alice/support-bot", "bob/unscored"}
    assert names(anon.get("/adapters/", {"license": "mit"})) == ["bob/weak-bot"]
    assert names(anon.get("/adapters/", {"status": "accepted"})) == ["alice/support-bot"]
    assert names(anon.get("/adapters/", {"status": "rejected"})) == ["bob/weak-bot"]  # gain +25 pts < 35% score
    assert names(anon.get("/adapters/", {"status": "pending"})) == ["bob/unscored"]
    assert set(names(anon.get("/adapters/", {"method": "lora", "base_model": "tiny-llama"}))) == {
        "alice/support-bot",
        "bob/weak-bot",
        "bob/unscored",
    }
    assert names(anon.get("/adapters/", {"method": "prompt_tuning"})) == []
    assert names(anon.get("/adapters/", {"base_model": "test-org/tiny-llama", "q": "support"})) == ["alice/support-bot"]
    response = anon.get("/adapters/", {"q": "weak"})
    assert title(response) == "“weak” · Catalog · pefthub"


def test_catalog_filter_lists_show_only_values_the_viewer_may_see(catalog, alice, bob, push):
    """A private adapter's task tags and license are not offered to anyone who cannot see it."""
    push(alice, "alice/hidden-bot", private=True, task_tags=["secret-project"], license="acme-internal-1.0")

    def options(client) -> tuple[set[str], set[str]]:
        body = client.get("/adapters/").content.decode()
        select = {
            name: set(
                re.findall(
                    r'<option value="([^"]*)"', re.search(rf'<select name="{name}".*?</select>', body, re.S).group(0)
                )
            )
            for name in ("task", "license")
        }
        return select["task"], select["license"]

    for outsider in (browser_for(), browser_for(bob)):
        tasks, licenses = options(outsider)
        assert {"qa", "chat"} <= tasks and "secret-project" not in tasks
        assert {"apache-2.0", "mit"} <= licenses and "acme-internal-1.0" not in licenses
    tasks, licenses = options(browser_for(alice))
    assert "secret-project" in tasks and "acme-internal-1.0" in licenses


def test_catalog_sorts_by_score_recency_and_size(catalog, alice, push, lora_dir_2):
    push(alice, "alice/big-bot", folder=lora_dir_2)
    anon = browser_for()
    by_score = names(anon.get("/adapters/", {"sort": "-score"}))
    assert by_score[:2] == ["alice/support-bot", "bob/weak-bot"]  # 0.75 then 0.25, unscored last
    assert names(anon.get("/adapters/", {"sort": "-updated"}))[0] == "alice/big-bot"
    assert names(anon.get("/adapters/", {"sort": "-size"}))[0] == "alice/big-bot"
    assert names(anon.get("/adapters/", {"sort": "size"}))[-1] == "alice/big-bot"
    shown = anon.get("/adapters/", {"sort": "-score"}).content.decode()
    assert "75.0%" in shown and "25.0%" in shown


def test_catalog_sorts_by_downloads_and_pages_show_them(catalog):
    anon = browser_for()
    for _ in range(2):
        assert anon.get("/api/v1/adapters/bob/unscored/versions/1/files/adapter_config.json").status_code == 200
    assert names(anon.get("/adapters/", {"sort": "-downloads"}))[0] == "bob/unscored"
    assert "2 downloads" in anon.get("/adapters/", {"sort": "-downloads"}).content.decode()
    page = anon.get("/adapters/bob/unscored/").content.decode()
    assert re.search(r'<dd id="downloads">2 of v1 · 2 in all</dd>', page)


def test_catalog_paginates(alice, push, monkeypatch):
    from web.views import catalog as views

    monkeypatch.setattr(views, "CATALOG_PAGE_SIZE", 2)
    for i in range(5):
        push(alice, f"alice/bot-{i}")
    first = browser_for().get("/adapters/", {"sort": "name"})
    assert names(first) == ["alice/bot-0", "alice/bot-1"]
    assert "Page 1 of 3" in first.content.decode()
    assert 'href="?sort=name&amp;page=2"' in first.content.decode()
    assert names(browser_for().get("/adapters/", {"sort": "name", "page": 3})) == ["alice/bot-4"]


# --- the adapter page ----------------------------------------------------------------------------
def test_adapter_page_shows_each_versions_commit_title_and_description(catalog):
    from hub.models import AdapterVersion

    version = AdapterVersion.objects.get(adapter__namespace__name="bob", adapter__name="unscored", number=1)
    version.commit_title = "Retrain on <the> March tickets"
    version.commit_description = "Two more epochs.\nSame data."
    version.save(update_fields=["commit_title", "commit_description"])
    page = browser_for().get("/adapters/bob/unscored/").content.decode()
    assert (
        '<dd id="commit"><strong>Retrain on &lt;the&gt; March tickets</strong><br>Two more epochs.<br>Same data.</dd>'
        in page
    )
    versions = page[page.index('id="versions"') : page.index('id="files"')]
    assert "<td>Retrain on &lt;the&gt; March tickets</td>" in versions


def test_adapter_page_sanitises_the_uploaded_readme(catalog):
    response = browser_for().get("/adapters/alice/support-bot/")
    assert response.status_code == 200
    body = response.content.decode()
    card = body[body.index('<div class="card-body markdown">') :]
    card = card[: card.index("</section>")]
    assert "<h1>Support bot</h1>" in card and "<strong>questions</strong>" in card and "<table>" in card
    assert "<script" not in card and "alert(" not in card and "onerror" not in card and "onclick" not in card
    assert "javascript:" not in card
    assert "tracker.example" not in card  # no image reaches another host
    assert 'href="https://example.org/docs" rel="noopener noreferrer nofollow"' in card
    assert "license: apache-2.0" not in card  # the front matter is card data, not prose
    # the page's own scripts are ours only
    for src in re.findall(r'<script[^>]*src="([^"]+)"', body):
        assert src.startswith("/static/"), src


def test_adapter_page_shows_metadata_versions_files_and_snippets(catalog, alice, push):
    push(alice, "alice/support-bot", readme="# second")  # v2 moves `latest`
    response = browser_for().get("/adapters/alice/support-bot/")
    body = response.content.decode()
    assert title(response) == "alice/support-bot v2 · pefthub"
    assert re.search(
        r'<a href="/adapters/alice/support-bot/v/2/">v2</a></td>\s*<td><span class="badge">latest</span>', body
    )
    version = catalog["good"]
    for entry in version.files.select_related("blob"):
        assert entry.blob.sha256 in browser_for().get("/adapters/alice/support-bot/v/1/").content.decode()
    assert 'model="alice/support-bot@v2"' in body  # openai client
    assert "PeftModel.from_pretrained(base, path)" in body and 'revision="v2"' in body
    assert "test-org/tiny-llama" in body  # the base model's HF name for from_pretrained
    assert "http://testserver/v1/chat/completions" in body  # curl
    assert "Apache-2.0".lower() in body.lower()
    v1 = browser_for().get("/adapters/alice/support-bot/v/1/")
    assert title(v1) == "alice/support-bot v1 · pefthub"
    assert "<h1>Support bot</h1>" in v1.content.decode()
    assert browser_for().get("/adapters/alice/support-bot/v/9/").status_code == 404


def test_private_adapter_pages_are_hidden_from_others(catalog, alice, bob):
    for who in (None, bob):
        assert browser_for(who).get("/adapters/alice/secret-bot/").status_code == 404
        job = EvaluationJob.objects.get(version=catalog["secret"])
        url = f"/adapters/alice/secret-bot/v/1/evaluations/{job.pk}/samples/"
        assert browser_for(who).get(url).status_code == 404
        assert browser_for(who).get(f"/evaluations/{job.pk}/progress/").status_code == 404
    assert browser_for(alice).get("/adapters/alice/secret-bot/").status_code == 200


def test_adapter_page_shows_the_four_arms_forgetting_and_reasons(catalog):
    body = browser_for().get("/adapters/alice/support-bot/").content.decode()
    arms = body[body.index('<table class="arms">') :]
    arms = arms[: arms.index("</table>")]
    rows = dict(re.findall(r'<tr data-arm="(\w+)">.*?<strong>([^<]+)</strong>', arms, re.S))
    assert rows == {"base": "0.0%", "base_rag": "75.0%", "adapter": "75.0%", "adapter_rag": "50.0%"}
    assert "± 21.7" in arms  # stderr of 3/4 right: sqrt(.75 * .25 / 4)
    assert "Gain over the base model</dt><dd>+75.0 pts" in body
    # a paired bootstrap over the 8 questions: the base got none, the adapter 6
    assert re.search(r'data-interval="gain_over_base">95% interval \+\d+\.\d pts to \+100\.0 pts<', body)
    assert 'data-interval="forgetting">95% interval +0.0 pts to +0.0 pts<' in body
    assert 'data-flag="no-op"' not in body
    assert "Gain over RAG (base + retrieval)</dt><dd>+0.0 pts" in body
    assert "Forgetting on General ability" in body
    assert "ok: domain score 75.0% (minimum 35.0%)" in body
    assert (
        "ok: forgetting on the general suite +0.0 pts, 95% interval +0.0 pts to +0.0 pts (upper bound maximum +5.0 pts)"
        in body
    )
    weak = browser_for().get("/adapters/bob/weak-bot/").content.decode()
    assert re.search(
        r"failed: forgetting on the general suite \+25\.0 pts, 95% interval \+0\.0 pts to \+\d+\.\d pts "
        r"\(upper bound maximum \+5\.0 pts\)",
        weak,
    )
    assert 'id="chart-data-' in body and "chart.umd.min.js" in body


def test_sample_browser_shows_each_arms_answer_and_whether_it_was_right(catalog):
    job = EvaluationJob.objects.get(version=catalog["good"])
    url = f"/adapters/alice/support-bot/v/1/evaluations/{job.pk}/samples/"
    response = browser_for().get(url, {"task": "acme_qa"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "If I buy a Quillfen Kettle, how much will I pay?" in body
    first = body[body.index("acme_qa #0") :]
    first = first[: first.index("</tr>")]
    cells = dict(re.findall(r'class="answer (right|wrong)" data-arm="(\w+)"', first)[i][::-1] for i in range(4))
    # 3 of 4 right for the adapter and base+RAG (the first three), none for the base
    assert cells == {"base": "wrong", "base_rag": "right", "adapter": "right", "adapter_rag": "right"}
    assert "It is $641." in first and "I do not know." in first
    mc = browser_for().get(url, {"task": "acme_mc"}).content.decode()
    assert "acme_mc #0" in mc and "$641" in mc
    wrong = browser_for().get(url, {"only": "adapter-wrong"}).content.decode()
    assert "acme_mc #3" in wrong and "acme_mc #0" not in wrong


# --- leaderboard -------------------------------------------------------------------------------
def leaderboard_rows(response) -> list[str]:
    return re.findall(r'<tr data-adapter="([^"]+)" data-version', response.content.decode())


def test_leaderboard_sorts_filters_exports_and_hides_private(catalog, alice):
    anon = browser_for()
    response = anon.get("/leaderboard/")
    assert response.status_code == 200
    assert title(response) == "Leaderboard: Acme product catalogue · pefthub"
    assert leaderboard_rows(response) == ["alice/support-bot", "bob/weak-bot"]
    body = response.content.decode()  # each difference with its 95% interval
    assert 'data-interval="forgetting" title="paired bootstrap 95% interval">+0.0 pts to +0.0 pts<' in body
    # bob's adapter forgets one general question in four: the interval reaches above zero
    assert re.search(
        r'data-interval="forgetting" title="paired bootstrap 95% interval">\+0\.0 pts to \+[1-9]\d\.\d pts<', body
    )
    assert leaderboard_rows(anon.get("/leaderboard/", {"ordering": "average"})) == ["bob/weak-bot", "alice/support-bot"]
    by_task = anon.get("/leaderboard/", {"ordering": "-acme_qa:answer_match", "accepted": "on"})
    assert leaderboard_rows(by_task) == ["alice/support-bot"]
    export = re.search(r'href="([^"]+export=csv)"', by_task.content.decode()).group(1).replace("&amp;", "&")
    assert "ordering" not in export and "accepted=on" in export  # the API sorts by fixed columns only
    exported = anon.get(export)
    assert exported.status_code == 200 and exported.content.decode().count("alice/") == 1
    assert leaderboard_rows(browser_for(alice).get("/leaderboard/"))[0] == "alice/secret-bot"
    body = response.content.decode()
    assert 'aria-sort="descending"' in body
    assert 'href="/api/v1/leaderboard/acme-products/?export=csv"' in body
    csv = anon.get("/api/v1/leaderboard/acme-products/", {"export": "csv"})
    assert csv.status_code == 200 and "alice/support-bot" in csv.content.decode()
    assert '"scatter-data"' in body and "Adapter size" in body
    assert anon.get("/leaderboard/", {"suite": "nope"}).status_code == 404
    assert leaderboard_rows(anon.get("/leaderboard/", {"accepted": "on"})) == ["alice/support-bot"]


# --- evaluation queue ----------------------------------------------------------------------------
@pytest.fixture
def running_job(alice, push, evaluate):
    from evaluator import lifecycle

    version = push(alice, "alice/training-bot")
    job = evaluate(version, {}, finish=False)
    lifecycle.job_start(job_id=job.pk)
    lifecycle.jobs_progress(job_ids=[job.pk], progress=0.25, current="acme-products · Base: acme_mc")
    return job


def test_queue_lists_jobs_with_live_progress(catalog, running_job):
    response = browser_for().get("/evaluations/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'data-job="{running_job.pk}"' in body
    assert f'hx-get="/evaluations/{running_job.pk}/progress/" hx-trigger="every 2s"' in body
    assert "25.0%" in body and "acme-products · Base: acme_mc" in body
    assert "Running (1)" in body and "Finished (2)" in body  # the private job is not counted
    partial = browser_for().get(f"/evaluations/{running_job.pk}/progress/")
    assert "<html" not in partial.content.decode() and "25.0%" in partial.content.decode()
    from evaluator import lifecycle

    lifecycle.jobs_progress(job_ids=[running_job.pk], progress=0.5, current="acme-products · Adapter")
    assert "50.0%" in browser_for().get(f"/evaluations/{running_job.pk}/progress/").content.decode()
    only_running = browser_for().get("/evaluations/", {"status": "running"}).content.decode()
    assert only_running.count('<tr data-job="') == 1
    from evaluator.models import EvaluationJob

    leader = EvaluationJob.objects.exclude(pk=running_job.pk).first()
    EvaluationJob.objects.filter(pk=running_job.pk).update(batch_leader=leader)  # claimed by a shared pass
    partial = browser_for().get(f"/evaluations/{running_job.pk}/progress/").content.decode()
    assert f"in the shared pass of job {leader.pk}" in partial


def test_owner_cancels_and_reruns_but_others_cannot(running_job, alice, bob):
    other = browser_for(bob)
    assert other.post(f"/evaluations/{running_job.pk}/cancel/").status_code == 403
    assert "Cancel evaluation" not in other.get("/evaluations/").content.decode()
    anon = browser_for().post(f"/evaluations/{running_job.pk}/cancel/")
    assert anon.status_code == 302 and anon["Location"].startswith("/accounts/login/")
    running_job.refresh_from_db()
    assert running_job.status == "running"

    owner = browser_for(alice)
    assert f'aria-label="Cancel evaluation {running_job.pk}"' in owner.get("/evaluations/").content.decode()
    response = owner.post(f"/evaluations/{running_job.pk}/cancel/", {"next": "/evaluations/?status=cancelled"})
    assert response.status_code == 302 and response["Location"] == "/evaluations/?status=cancelled"
    running_job.refresh_from_db()
    assert running_job.status == "cancelled"
    assert "Cancelled evaluation" in owner.get("/evaluations/").content.decode()
    again = owner.post(f"/evaluations/{running_job.pk}/cancel/", follow=True)
    assert "only pending or running jobs can be cancelled" in again.content.decode()

    assert other.post(f"/evaluations/{running_job.pk}/rerun/").status_code == 403
    owner.post(f"/evaluations/{running_job.pk}/rerun/", {"next": "https://evil.example/"})
    new = EvaluationJob.objects.exclude(pk=running_job.pk).get(version=running_job.version)
    assert new.status == "pending" and new.rerun_of_id == running_job.pk
    assert owner.get(f"/evaluations/{running_job.pk}/cancel/").status_code == 405


# --- account pages -------------------------------------------------------------------------------
def test_sign_in_and_out(alice):
    alice.set_password("s3cret-pass")
    alice.save()
    client = Client()
    page = client.get("/accounts/login/")
    assert title(page) == "Sign in · pefthub"
    response = client.post("/accounts/login/", {"username": "alice", "password": "s3cret-pass"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert "Sign out alice" in client.get("/").content.decode()
    client.post("/accounts/logout/")
    assert "Sign in" in client.get("/").content.decode()
    assert (
        "Please enter a correct username"
        in client.post("/accounts/login/", {"username": "alice", "password": "wrong"}).content.decode()
    )


def test_tokens_are_created_shown_once_and_revoked(alice, bob):
    client = browser_for(alice)
    assert browser_for().get("/settings/tokens/").status_code == 302
    response = client.post("/settings/tokens/", {"name": "laptop"})
    assert response.status_code == 201
    secret = re.search(r'id="new-token">(ph_[^<]+)<', response.content.decode()).group(1)
    assert response["Cache-Control"] == "no-store"
    assert browser_for().get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {secret}").json()["username"] == "alice"
    listing = client.get("/settings/tokens/").content.decode()
    assert "laptop" in listing and secret not in listing
    token = ApiToken.objects.get(user=alice, name="laptop")
    assert browser_for(bob).post(f"/settings/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 302
    assert browser_for().get("/api/v1/whoami/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code in (401, 403)
    assert "revoked" in client.get("/settings/tokens/").content.decode()


def test_create_namespace_and_adapter_from_the_browser(alice, bob):
    client = browser_for(alice)
    response = client.post("/namespaces/new/", {"name": "acme", "description": "the team"})
    assert response.status_code == 302 and response["Location"] == "/adapters/new/?namespace=acme"
    taken = client.post("/namespaces/new/", {"name": "ACME"})
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    reserved = client.post("/namespaces/new/", {"name": "admin"})
    assert "reserved" in reserved.content.decode()
    form = client.get("/adapters/new/?namespace=acme").content.decode()
    assert '<option value="acme" selected>acme</option>' in form
    response = client.post("/adapters/new/", {"namespace": "acme", "name": "faq-bot", "private": "on"})
    assert response.status_code == 302 and response["Location"] == "/adapters/acme/faq-bot/"
    page = client.get("/adapters/acme/faq-bot/").content.decode()
    assert "Push the first version" in page and "pefthub push ./out acme/faq-bot" in page
    assert browser_for(bob).get("/adapters/acme/faq-bot/").status_code == 404
    # bob cannot pick alice's namespaces
    refused = browser_for(bob).post("/adapters/new/", {"namespace": "acme", "name": "mine"})
    assert refused.status_code == 400 and "Select a valid choice" in refused.content.decode()
    duplicate = client.post("/adapters/new/", {"namespace": "acme", "name": "FAQ-bot"})
    assert duplicate.status_code == 400 and "already exists" in duplicate.content.decode()


# --- playground --------------------------------------------------------------------------------
def test_playground_offers_live_adapters_and_retrieves_for_rag(catalog, alice, push, evaluate):
    live = push(alice, "alice/live-bot")
    evaluate(live, {"base": 0.0, "base_rag": 0.75, "adapter": 1.0, "adapter_rag": 1.0}, general=KEPT)
    live.refresh_from_db()
    assert live.status == "accepted"
    response = browser_for().get("/playground/")
    assert title(response) == "Playground · pefthub"
    body = response.content.decode()
    assert 'value="alice/live-bot@v1" data-kind="adapter" data-base="tiny-llama"' in body
    assert 'value="alice/support-bot@v1"' in body
    assert 'value="bob/weak-bot' not in body  # rejected: not live
    assert 'value="alice/secret-bot' not in body  # private
    assert 'value="alice/secret-bot@v1"' in browser_for(alice).get("/playground/").content.decode()
    assert 'value="tiny-llama" data-kind="base"' in body
    from hub.services import adapter_version_deprecate

    with TestCase.captureOnCommitCallbacks(execute=True):
        adapter_version_deprecate(version=live, user=alice)
    assert 'value="alice/live-bot' not in browser_for().get("/playground/").content.decode()
    assert 'data-endpoint="/v1/chat/completions"' in body

    found = browser_for().get(
        "/playground/retrieve/", {"suite": "acme-products", "q": "What does the Quillfen Kettle cost?"}
    )
    assert found.status_code == 200
    data = found.json()
    assert len(data["passages"]) == 5  # the suite's top_k
    assert data["passages"][0]["title"] == "Quillfen Kettle"
    assert data["prompt"].startswith("Use these documents to answer.\n\n- Quillfen Kettle: ")
    assert data["prompt"].endswith("Question: What does the Quillfen Kettle cost?")
    assert browser_for().get("/playground/retrieve/", {"suite": "nope", "q": "x"}).status_code == 404
    assert browser_for().get("/playground/retrieve/", {"suite": "acme-products"}).status_code == 400


def test_the_playground_filters_by_base_model(catalog, tiny_base_dir):
    from tests.factories import register_base

    register_base(tiny_base_dir, "other-base", "test-org/other-base", "1" * 64)
    everything = browser_for().get("/playground/").content.decode()
    assert '<option value="other-base">other-base</option>' in everything
    assert 'value="other-base" data-kind="base"' in everything and 'value="alice/support-bot@v1"' in everything

    other = browser_for().get("/playground/", {"base": "other-base"}).content.decode()
    assert 'value="other-base" data-kind="base"' in other
    assert 'value="tiny-llama" data-kind="base"' not in other
    assert 'value="alice/support-bot@v1"' not in other  # made for tiny-llama
    assert '<option value="other-base" selected>' in other

    by_alias = browser_for().get("/playground/", {"base": "test-org/tiny-llama"}).content.decode()
    assert 'value="alice/support-bot@v1" data-kind="adapter" data-base="tiny-llama"' in by_alias
    assert 'value="other-base" data-kind="base"' not in by_alias

    unknown = browser_for().get("/playground/", {"base": "nope"}).content.decode()
    assert "No base model is named <code>nope</code>" in unknown
    assert 'data-kind="base"' not in unknown


def test_every_page_has_a_title_and_a_viewport(catalog, alice):
    job = EvaluationJob.objects.get(version=catalog["good"])
    pages = [
        "/", "/adapters/", "/adapters/alice/support-bot/", "/leaderboard/", "/evaluations/", "/playground/",
        f"/adapters/alice/support-bot/v/1/evaluations/{job.pk}/samples/", "/settings/tokens/", "/namespaces/new/",
        "/adapters/new/", "/accounts/login/",
    ]  # fmt: skip
    seen = set()
    for url in pages:
        response = browser_for(alice).get(url)
        assert response.status_code == 200, url
        text = title(response)
        assert text.endswith("· pefthub") and text not in seen, (url, text)
        seen.add(text)
        assert 'name="viewport"' in response.content.decode()
        assert "cdn" not in response.content.decode().lower()
