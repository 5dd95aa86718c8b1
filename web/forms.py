"""Forms: they validate what a page sends; services do the writing."""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import F, QuerySet

from evaluator.models import EvaluationJob
from hub.filters import CatalogFilterSet, ordered
from hub.models import Adapter

from .selectors import CATALOG_SORTS

LEADERBOARD_X_AXES = {
    "size_bytes": "Adapter size (bytes)",
    "num_training_examples": "Training examples",
    "trainable_params": "Trainable parameters",
}


class CatalogPageFilters(CatalogFilterSet):
    """The catalog page's filters: the API's, with ``sort`` (which adds the best score) for ``ordering``."""

    ordering = None
    sort = django_filters.ChoiceFilter(
        method="sort_by", choices=list(CATALOG_SORTS.items()), label="Sort by", empty_label=None
    )

    def sort_by(self, queryset: QuerySet[Adapter], name: str, value: str) -> QuerySet[Adapter]:
        if value == "-score":  # the score is web.selectors.catalog's annotation
            return queryset.order_by(F("score").desc(nulls_last=True), "-updated_at", "-pk")
        return ordered(queryset, value)


class LeaderboardForm(forms.Form):
    suite = forms.SlugField(required=False)
    base_model = forms.CharField(required=False, max_length=300)
    accepted = forms.BooleanField(required=False, label="Accepted versions only")
    ordering = forms.RegexField(regex=r"^-?[A-Za-z0-9_:.\[\]-]{1,120}$", required=False)
    x = forms.ChoiceField(required=False, choices=list(LEADERBOARD_X_AXES.items()), label="Chart against")


class QueueForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "All"), *EvaluationJob.Status.choices])
    adapter = forms.RegexField(regex=r"^[^/]+/[^/]+$", required=False, max_length=200)


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. `training-cluster`.")


class NamespaceCreateForm(forms.Form):
    name = forms.CharField(max_length=96)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class AdapterCreateForm(forms.Form):
    namespace = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=96)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    private = forms.BooleanField(required=False, help_text="Only members of the namespace can see it.")

    def __init__(self, *args, namespaces, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["namespace"].queryset = namespaces
        self.fields["namespace"].to_field_name = "name"


class RetrieveForm(forms.Form):
    suite = forms.SlugField()
    q = forms.CharField(max_length=2000)
