"""Job state as columns: `solo`, `fresh` and `rerun_of` move out of `summary`; `decision`
gets choices (and a constraint: empty, accepted or rejected)."""

import django.db.models.deletion
from django.db import migrations, models


STATE_KEYS = ("solo", "fresh", "rerun_of")


def summary_to_columns(apps, schema_editor):
    Job = apps.get_model("evaluator", "EvaluationJob")
    known = set(Job.objects.values_list("pk", flat=True))
    for job in Job.objects.filter(summary__has_any_keys=list(STATE_KEYS)).iterator():
        rerun_of = job.summary.get("rerun_of")
        job.solo = bool(job.summary.get("solo"))
        job.fresh = bool(job.summary.get("fresh"))
        job.rerun_of_id = rerun_of if rerun_of in known else None
        job.summary = {k: v for k, v in job.summary.items() if k not in STATE_KEYS}
        job.save(update_fields=["solo", "fresh", "rerun_of", "summary"])


def columns_to_summary(apps, schema_editor):
    Job = apps.get_model("evaluator", "EvaluationJob")
    jobs = Job.objects.filter(models.Q(solo=True) | models.Q(fresh=True) | models.Q(rerun_of__isnull=False))
    for job in jobs.iterator():
        state = {"solo": job.solo, "fresh": job.fresh, "rerun_of": job.rerun_of_id}
        job.summary = {**job.summary, **{k: v for k, v in state.items() if v}}
        job.save(update_fields=["summary"])


class Migration(migrations.Migration):

    dependencies = [
        ('evaluator', '0002_job_batch_leader'),
    ]

    operations = [
        migrations.AddField(
            model_name='evaluationjob',
            name='fresh',
            field=models.BooleanField(default=False, help_text='recompute every arm instead of reusing stored runs'),
        ),
        migrations.AddField(
            model_name='evaluationjob',
            name='rerun_of',
            field=models.ForeignKey(blank=True, help_text='the job this one re-runs', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='reruns', to='evaluator.evaluationjob'),
        ),
        migrations.AddField(
            model_name='evaluationjob',
            name='solo',
            field=models.BooleanField(default=False, help_text='a failed shared pass set it apart: it runs alone'),
        ),
        migrations.AlterField(
            model_name='evaluationjob',
            name='decision',
            field=models.CharField(blank=True, choices=[('accepted', 'Accepted'), ('rejected', 'Rejected')], help_text="the policy's verdict; empty until finished", max_length=10),
        ),
        migrations.RunPython(summary_to_columns, columns_to_summary),
        migrations.AddConstraint(
            model_name='evaluationjob',
            constraint=models.CheckConstraint(condition=models.Q(('decision__in', ['', 'accepted', 'rejected'])), name='job_decision_known'),
        ),
    ]
