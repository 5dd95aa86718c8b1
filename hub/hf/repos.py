"""Repos as ``huggingface_hub`` creates, configures and deletes them: a repo is an adapter.

- ``POST /api/repos/create`` ``{"name", "organization", "visibility" | "private", "type"}``:
  201 ``{"url"}``; an existing adapter is a 409, which ``create_repo(exist_ok=True)`` ignores.
  ``organization`` is the namespace (the user's own one when absent).
- ``PUT /api/models/{ns}/{name}/settings`` ``{"visibility": "private" | "public"}``.
- ``DELETE /api/repos/delete`` ``{"name", "organization"}``: owners of the namespace only.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from hub import selectors, services
from hub.api_errors import _header_safe
from hub.exceptions import HubError, PermissionDenied
from hub.models import Adapter

from .protocol import Caller
from .writes import check_model_type, hf_write, json_body, repo_url, writable_adapter


def _private(data: dict) -> bool | None:
    visibility = data.get("visibility")
    if visibility is not None:
        if visibility not in ("public", "private"):
            raise HubError(f"visibility `{visibility}` is not supported: use `public` or `private`")
        return visibility == "private"
    private = data.get("private")
    return None if private is None else bool(private)


def _namespace_and_name(caller: Caller, data: dict) -> tuple[str, str]:
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise HubError("`name` is required")
    organization = data.get("organization") or caller.user.get_username()
    return str(organization), name


@hf_write("POST")
def repo_create(request: HttpRequest, caller: Caller):
    data = json_body(request)
    check_model_type(data.get("type"))
    namespace_name, name = _namespace_and_name(caller, data)
    namespace = selectors.namespace_get(name=namespace_name)
    selectors.require_write(user=caller.user, namespace=namespace)
    existing = Adapter.objects.filter(namespace=namespace, name__iexact=name).first()
    if existing is not None:
        # The Hub's words and shape: the client's exist_ok looks at the 409 alone.
        message = f"You already created this model repo: {existing.full_name}"
        response = JsonResponse({"error": message, "url": repo_url(request, existing)}, status=409)
        response["X-Error-Message"] = _header_safe(message)
        return response
    adapter = services.adapter_create(namespace=namespace, name=name, user=caller.user, private=bool(_private(data)))
    return JsonResponse({"url": repo_url(request, adapter), "name": adapter.full_name, "id": str(adapter.pk)})


@hf_write("PUT")
def repo_settings(request: HttpRequest, caller: Caller, namespace: str, name: str):
    adapter = writable_adapter(caller, namespace, name)
    data = json_body(request)
    if data.get("gated") not in (None, False, "false"):
        raise HubError("gated access is not supported by pefthub: use private repos and namespace members")
    private = _private(data)
    services.adapter_update(adapter=adapter, user=caller.user, private=private)
    return JsonResponse({"private": adapter.private})


@hf_write("DELETE")
def repo_delete(request: HttpRequest, caller: Caller):
    data = json_body(request)
    check_model_type(data.get("type"))
    namespace_name, name = _namespace_and_name(caller, data)
    adapter = selectors.adapter_get(user=caller.user, namespace=namespace_name, name=name)
    role = selectors.user_role(user=caller.user, namespace=adapter.namespace)
    if role != "owner" and not caller.user.is_superuser:
        raise PermissionDenied(f"only owners of `{adapter.namespace.name}` may delete {adapter.full_name}")
    services.adapter_delete(adapter=adapter, user=caller.user)
    return JsonResponse({})
