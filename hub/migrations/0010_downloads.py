# Download counts (HF's convention) and the answers hash evaluation reuse keys on.

import hashlib
import os

from django.db import migrations, models

# A copy of hub.validation.files.answers_hash as it was when this migration was written:
# a migration must not change meaning when the code it once imported does.
_NEUTRAL_NAMES = {"training_metadata.json", ".gitattributes"}


def _answers_hash(hashes):
    kept = sorted(
        (path, sha)
        for path, sha in hashes.items()
        if os.path.basename(path) not in _NEUTRAL_NAMES and os.path.splitext(path)[1].lower() != ".md"
    )
    return hashlib.sha256("".join(f"{path}\0{sha}\n" for path, sha in kept).encode()).hexdigest()


def backfill_answers_hash(apps, schema_editor):
    """Each stored version's answers hash, from the sha256s its VersionFile rows name."""
    AdapterVersion = apps.get_model("hub", "AdapterVersion")
    VersionFile = apps.get_model("hub", "VersionFile")
    ids = list(AdapterVersion.objects.filter(answers_hash="").values_list("pk", flat=True))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        files = {}
        for version_id, path, sha in VersionFile.objects.filter(version_id__in=chunk).values_list(
            "version_id", "path", "blob_id"
        ):
            files.setdefault(version_id, {})[path] = sha
        for version_id in chunk:
            if version_id in files:  # a version without file rows keeps "" (its content hash is used)
                AdapterVersion.objects.filter(pk=version_id).update(answers_hash=_answers_hash(files[version_id]))


class Migration(migrations.Migration):

    dependencies = [
        ('hub', '0009_base_model_revision_files'),
    ]

    operations = [
        migrations.AddField(
            model_name='adapter',
            name='downloads',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='adapterversion',
            name='answers_hash',
            field=models.CharField(blank=True, db_index=True, default='', max_length=64),
        ),
        migrations.AddField(
            model_name='adapterversion',
            name='downloads',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name='adapter',
            index=models.Index(fields=['private', '-downloads'], name='hub_adapter_downloads'),
        ),
        migrations.RunPython(backfill_answers_hash, migrations.RunPython.noop),
    ]
