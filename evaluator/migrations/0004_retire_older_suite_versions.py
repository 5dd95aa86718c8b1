"""Only the newest version of a suite stays active: before, installing 1.0.1 left 1.0.0
active too, and every upload got one job for each."""

from django.db import migrations


def retire_older_versions(apps, schema_editor):
    Suite = apps.get_model("evaluator", "Suite")
    newest: dict[str, int] = {}
    for pk, slug in Suite.objects.filter(active=True).order_by("slug", "-created_at", "-pk").values_list("pk", "slug"):
        newest.setdefault(slug, pk)
    Suite.objects.filter(active=True).exclude(pk__in=newest.values()).update(active=False)


class Migration(migrations.Migration):
    dependencies = [("evaluator", "0003_job_state_columns")]

    operations = [migrations.RunPython(retire_older_versions, migrations.RunPython.noop)]
