"""Indexes for the catalog (hub.filters): narrow version indexes for the card filters,
and on PostgreSQL trigram indexes for ``q=`` (``icontains`` is ``UPPER(col) LIKE``).

The trigram part runs only on PostgreSQL (pg_trgm is a trusted extension since
PostgreSQL 13: the database owner may create it); SQLite scans, as before.
"""

from django.db import migrations, models

TRIGRAM_INDEXES = {
    "hub_adapter_name_trgm": "hub_adapter USING gin (UPPER(name::text) gin_trgm_ops)",
    "hub_adapter_description_trgm": "hub_adapter USING gin (UPPER(description) gin_trgm_ops)",
}


def trigram_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, target in TRIGRAM_INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def trigram_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("hub", "0003_token_scopes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="adapterversion",
            index=models.Index(fields=["method", "id"], name="hub_version_method_id"),
        ),
        migrations.AddIndex(
            model_name="adapterversion",
            index=models.Index(fields=["license", "id"], name="hub_version_license_id"),
        ),
        migrations.AddIndex(
            model_name="adapterversion",
            index=models.Index(fields=["status", "id"], name="hub_version_status_id"),
        ),
        migrations.AddIndex(
            model_name="adapterversion",
            index=models.Index(fields=["base_model", "id"], name="hub_version_base_model_id"),
        ),
        migrations.RunPython(trigram_create, trigram_drop, elidable=False),
    ]
