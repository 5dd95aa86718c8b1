"""Page-number pagination for the API and the pages, with pages fetched ids first.

A deep page (``?page=100``) used to cost an ``OFFSET`` over the fully joined rows: the
database built, sorted and threw away 4,950 wide rows to return 50. :class:`IdsFirstPaginator`
takes the page's ids from the filtered, ordered adapter table alone (narrow, served by
the ordering indexes), then loads just those rows with their joins and prefetches. Page
numbers (and the ``count`` the API and the pages show) therefore keep working at any
depth; with 10,000 adapters page 100 costs about what page 1 does (bench/catalog.py).
A cursor (keyset) would only pay off at millions of rows, and would lose page links.
"""

from __future__ import annotations

from typing import Any, cast

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from rest_framework.pagination import PageNumberPagination


class IdsFirstPaginator(Paginator):
    """A Django ``Paginator`` over a queryset whose page is fetched in two steps: ids, then rows."""

    def page(self, number) -> Page:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        # Only AdapterPagination uses this paginator, always over a queryset.
        object_list = cast("QuerySet[Any]", self.object_list)
        ids = list(object_list.values_list("pk", flat=True)[bottom:top])
        # A second statement, by primary key: in one statement (`pk IN (subquery)`) the
        # planner re-applies every filter to the whole table (2-5x slower at 10,000 rows).
        rows = {row.pk: row for row in object_list.filter(pk__in=ids)} if ids else {}
        # A row deleted between the two queries is left out rather than failing the page.
        # Django's own hook for making a Page (what Paginator.page calls); django-stubs omit it.
        return self._get_page([rows[pk] for pk in ids if pk in rows], number, self)  # type: ignore[attr-defined]


class CatalogPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AdapterPagination(CatalogPagination):
    """The catalog API's pages: ``page`` and ``page_size`` as before, fetched ids first."""

    django_paginator_class = IdsFirstPaginator
