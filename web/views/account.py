"""Sign-in (rate-limited) and the signed-in pages: API tokens, new namespaces and new adapters,
all through hub services."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_ratelimit.core import is_ratelimited

from hub import selectors as hub_selectors
from hub import services as hub_services
from hub.exceptions import HubError

from .. import selectors
from ..forms import AdapterCreateForm, NamespaceCreateForm, TokenCreateForm
from .common import hub_errors


def _username_key(group: str, request: HttpRequest) -> str:
    return request.POST.get("username", "").strip().lower()


class LoginView(auth_views.LoginView):
    """Django's sign-in, with attempts limited per client address and per username.

    django-ratelimit counts every attempt (a right password too) in the cache, per
    fixed window. Over either limit, the password is not even checked: the page says
    when to try again, with 429 and ``Retry-After``.
    """

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        limits = [
            ("login-address", "ip", settings.PEFTHUB_LOGIN_RATE_PER_ADDRESS),
            ("login-username", _username_key, settings.PEFTHUB_LOGIN_RATE_PER_USERNAME),
        ]
        # Both counters move on every attempt, so neither can be reset by alternating.
        limited = [is_ratelimited(request, group=g, key=k, rate=r, increment=True) for g, k, r in limits]
        if not any(limited):
            return super().post(request, *args, **kwargs)
        window = max(_window_seconds(rate) for (_, _, rate), hit in zip(limits, limited, strict=True) if hit)
        form = self.get_form_class()(request, initial={"username": request.POST.get("username", "")})
        message = f"Too many sign-in attempts. Wait at most {window} seconds, then try again."
        response = self.render_to_response(self.get_context_data(form=form, limited=message), status=429)
        response["Retry-After"] = str(window)
        return response


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _window_seconds(rate: str) -> int:
    """The window of a django-ratelimit rate such as ``5/m`` or ``100/2h``, in seconds."""
    period = rate.partition("/")[2]
    return int(period[:-1] or 1) * _UNITS[period[-1]]


def _add_error(form, exc: HubError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List the user's tokens; a POST creates one and shows its secret once, on this response."""
    secret = None
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token, secret = hub_services.api_token_create(user=request.user, name=form.cleaned_data["name"])
        messages.success(request, f"Created token “{token.name}”. Copy it now: it is not shown again.")
        form = TokenCreateForm()
    response = render(
        request,
        "web/tokens.html",
        {"form": form, "tokens": selectors.token_list(user=request.user), "secret": secret},
        status=201 if secret else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = selectors.token_get(user=request.user, token_id=token_id)
    if token is None:
        raise Http404("token not found")
    hub_services.api_token_revoke(token=token)
    messages.success(request, f"Revoked token “{token.name}” ({token.prefix}…).")
    return redirect("web:tokens")


@login_required
def namespace_create(request: HttpRequest) -> HttpResponse:
    form = NamespaceCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            namespace = hub_services.namespace_create(
                name=form.cleaned_data["name"], owner=request.user, description=form.cleaned_data["description"]
            )
        except HubError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Created namespace {namespace.name}; you are its owner.")
            return redirect(f"{reverse('web:adapter-create')}?namespace={namespace.name}")
    return render(request, "web/namespace_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@hub_errors
def adapter_create(request: HttpRequest) -> HttpResponse:
    namespaces = selectors.writable_namespaces(user=request.user)
    initial = {"namespace": request.GET.get("namespace", "")}
    form = AdapterCreateForm(request.POST or None, namespaces=namespaces, initial=initial)
    if request.method == "POST" and form.is_valid():
        namespace = form.cleaned_data["namespace"]
        try:
            hub_selectors.require_write(user=request.user, namespace=namespace)
            adapter = hub_services.adapter_create(
                namespace=namespace,
                name=form.cleaned_data["name"],
                user=request.user,
                private=form.cleaned_data["private"],
                description=form.cleaned_data["description"],
            )
        except HubError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Created {adapter.full_name}. Push its first version with the snippet below.")
            return redirect("web:adapter", namespace=namespace.name, name=adapter.name)
    return render(
        request,
        "web/adapter_form.html",
        {"form": form, "has_namespaces": namespaces.exists()},
        status=400 if form.errors else 200,
    )
