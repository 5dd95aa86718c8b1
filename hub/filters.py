"""The catalog's filters, defined once: the REST API and the web pages both use
:class:`CatalogFilterSet` (the pages add their own ``sort``, see ``web.forms``).

Each filter on the newest version's card is written as ``latest_version_id IN (...)``
over a narrow index of ``AdapterVersion`` (``hub_version_<field>_id``), so counting and
paging never join the wide version rows (README, config); text search looks up names
and descriptions through trigram indexes on PostgreSQL (migration 0004).
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Q, QuerySet

from .models import Adapter, AdapterVersion, BaseModel, Namespace

# ``ordering`` values -> the Adapter column; every ordering ends with ``-pk`` (a total order).
ORDERINGS = {
    "updated": "updated_at",
    "-updated": "-updated_at",
    "created": "created_at",
    "-created": "-created_at",
    "name": "name",
    "-name": "-name",
    "size": "latest_size_bytes",
    "-size": "-latest_size_bytes",
    "params": "latest_trainable_params",
    "-params": "-latest_trainable_params",
    "downloads": "downloads",
    "-downloads": "-downloads",
}
DEFAULT_ORDERING = "-updated"
SEARCH_WORDS = 8  # words of ``q`` that are searched; the rest are ignored


def ordered(queryset: QuerySet[Adapter], key: str) -> QuerySet[Adapter]:
    """``queryset`` in the order ``key`` (a key of :data:`ORDERINGS`) names, newest id first on ties."""
    return queryset.order_by(ORDERINGS[key], "-pk")


def versions_tagged(tag: str) -> QuerySet:
    """Ids of the versions tagged ``tag`` (case-insensitive)."""
    through = AdapterVersion.task_tags.through
    return through.objects.filter(tasktag__name__iexact=tag).values("adapterversion_id")


def _versions(**lookup: Any) -> QuerySet:
    return AdapterVersion.objects.filter(**lookup).values("pk")


class CatalogFilterSet(django_filters.FilterSet):
    """Filters on the adapter and its newest version; ``ordering`` defaults to ``-updated``."""

    q = django_filters.CharFilter(
        method="search", max_length=200, label="Search", help_text="words in the name, namespace, description or tags"
    )
    namespace = django_filters.CharFilter(field_name="namespace__name", lookup_expr="iexact", max_length=96)
    base_model = django_filters.CharFilter(
        method="by_base_model", max_length=300, label="Base model", help_text="name or alias of the base model"
    )
    method = django_filters.ChoiceFilter(
        method="by_version", choices=AdapterVersion.Method.choices, empty_label="Any method"
    )
    peft_type = django_filters.CharFilter(method="by_peft_type", max_length=32, help_text="peft's name, e.g. LORA")
    task = django_filters.CharFilter(method="by_task", max_length=64, help_text="a task tag")
    license = django_filters.CharFilter(method="by_license", max_length=100)
    status = django_filters.ChoiceFilter(
        method="by_version", choices=AdapterVersion.Status.choices, empty_label="Any status", label="Evaluation"
    )
    ordering = django_filters.ChoiceFilter(
        method="order", choices=[(key, key) for key in ORDERINGS], help_text="default: -updated"
    )

    class Meta:
        model = Adapter
        fields: list[str] = []  # the declared filters only

    def filter_queryset(self, queryset: QuerySet[Adapter]) -> QuerySet[Adapter]:
        # The ordering filter only runs for a value: order by the default first.
        return super().filter_queryset(ordered(queryset, DEFAULT_ORDERING))

    # --- one method per filter ----------------------------------------------------------------
    def search(self, queryset: QuerySet[Adapter], name: str, value: str) -> QuerySet[Adapter]:
        for word in value.split()[:SEARCH_WORDS]:
            # Each alternative is a subquery: the text one is answered by the trigram indexes
            # (0004) once per request, where OR-ing LIKEs into the outer scan runs them per row.
            text = Adapter.objects.filter(Q(name__icontains=word) | Q(description__icontains=word))
            queryset = queryset.filter(
                Q(pk__in=text.values("pk"))
                | Q(namespace_id__in=Namespace.objects.filter(name__icontains=word).values("pk"))
                | Q(latest_version_id__in=versions_tagged(word))
            )
        return queryset

    def by_base_model(self, queryset: QuerySet[Adapter], name: str, value: str) -> QuerySet[Adapter]:
        named = BaseModel.objects.filter(Q(name__iexact=value) | Q(aliases__alias__iexact=value)).values("pk")
        return queryset.filter(latest_version_id__in=_versions(base_model_id__in=named))

    def by_version(self, queryset: QuerySet[Adapter], name: str, value: str) -> QuerySet[Adapter]:
        return queryset.filter(latest_version_id__in=_versions(**{name: value}))

    def by_peft_type(self, queryset: QuerySet[Adapter], name: str, value: str) -> QuerySet[Adapter]:
        return queryset.filter(latest_version_id__in=_versions(peft_type__iexact=value))

    def by_task(self, queryset: QuerySet[Adapter], name: str, value: str) -> QuerySet[Adapter]:
        return queryset.filter(latest_version_id__in=versions_tagged(value))

    def by_license(self, queryset: QuerySet[Adapter], name: str, value: str) -> QuerySet[Adapter]:
        return queryset.filter(latest_version_id__in=_versions(license=value.strip().lower()))  # stored lowercase

    def order(self, queryset: QuerySet[Adapter], name: str, value: str) -> QuerySet[Adapter]:
        return ordered(queryset, value)
