"""Thin DRF views: validate the request, call one service or selector, translate."""

from __future__ import annotations

import json
from contextlib import ExitStack

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import LimitedStream
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import archives, selectors, services
from .downloads import version_archive_response
from .exceptions import HubError, NotFound, UploadRejected
from .models import ApiToken
from .serializers import (
    AdapterCreateIn,
    AdapterOut,
    AdapterUpdateIn,
    AliasOut,
    AliasSetIn,
    BaseModelOut,
    CardIn,
    CatalogQueryIn,
    DeprecateIn,
    MemberSetIn,
    NamespaceCreateIn,
    NamespaceOut,
    TokenCreateIn,
    TokenOut,
    VersionOut,
    VersionUploadIn,
)


def validated(serializer_class, data):
    """The request's input through ``serializer_class``; invalid input is a 400 naming the field."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- base models -----------------------------------------------------------------------------
class BaseModelListApi(APIView):
    @extend_schema(responses=BaseModelOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(BaseModelOut(selectors.base_model_list(), many=True).data)


class BaseModelDetailApi(APIView):
    @extend_schema(responses=BaseModelOut)
    def get(self, request: Request, name: str) -> Response:
        try:
            base = selectors.base_model_resolve(name)
        except HubError:
            raise NotFound(f"base model `{name}` not found") from None
        return Response(BaseModelOut(base).data)


# --- namespaces ------------------------------------------------------------------------------
class NamespaceListApi(APIView):
    @extend_schema(responses=NamespaceOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(NamespaceOut(selectors.namespace_list(user=request.user), many=True).data)

    @extend_schema(request=NamespaceCreateIn, responses={201: NamespaceOut})
    def post(self, request: Request) -> Response:
        if not request.user.is_authenticated:
            raise HubError("creating a namespace needs a token", status_code=401, code="not_authenticated")
        data = validated(NamespaceCreateIn, request.data)
        namespace = services.namespace_create(owner=request.user, **data)
        return Response(NamespaceOut(namespace).data, status=status.HTTP_201_CREATED)


class NamespaceMemberApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=MemberSetIn, responses={200: None})
    def put(self, request: Request, namespace: str) -> Response:
        ns = selectors.namespace_get(name=namespace)
        if selectors.user_role(user=request.user, namespace=ns) != "owner" and not request.user.is_superuser:
            raise HubError(f"only owners of `{ns.name}` manage its members", status_code=403, code="permission_denied")
        data = validated(MemberSetIn, request.data)
        user = get_user_model().objects.filter(username=data["username"]).first()
        if user is None:
            raise NotFound(f"user `{data['username']}` not found")
        services.membership_set(namespace=ns, user=user, role=data["role"])
        return Response({"namespace": ns.name, "username": user.get_username(), "role": data["role"]})


# --- adapters --------------------------------------------------------------------------------
class AdapterListApi(APIView):
    @extend_schema(parameters=[CatalogQueryIn], responses=AdapterOut(many=True))
    def get(self, request: Request) -> Response:
        query = validated(CatalogQueryIn, request.query_params)
        qs = selectors.adapter_list(user=request.user, filters=selectors.CatalogFilters(**query))
        paginator = self.paginator
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(AdapterOut(page, many=True).data)

    @extend_schema(request=AdapterCreateIn, responses={201: AdapterOut})
    def post(self, request: Request) -> Response:
        data = validated(AdapterCreateIn, request.data)
        namespace = selectors.namespace_get(name=data.pop("namespace"))
        selectors.require_write(user=request.user, namespace=namespace)
        adapter = services.adapter_create(namespace=namespace, user=request.user, **data)
        return Response(AdapterOut(adapter).data, status=status.HTTP_201_CREATED)

    @property
    def paginator(self):
        if not hasattr(self, "_paginator"):
            from .pagination import CatalogPagination

            self._paginator = CatalogPagination()
        return self._paginator


class AdapterDetailApi(APIView):
    @extend_schema(responses=AdapterOut)
    def get(self, request: Request, namespace: str, name: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        return Response(AdapterOut(adapter).data)

    @extend_schema(request=AdapterUpdateIn, responses=AdapterOut)
    def patch(self, request: Request, namespace: str, name: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        selectors.require_write(user=request.user, namespace=adapter.namespace)
        data = validated(AdapterUpdateIn, request.data)
        adapter = services.adapter_update(adapter=adapter, user=request.user, **data)
        return Response(AdapterOut(adapter).data)


class VersionListApi(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(responses=VersionOut(many=True))
    def get(self, request: Request, namespace: str, name: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        return Response(VersionOut(selectors.version_list(adapter=adapter), many=True).data)

    @extend_schema(request={"multipart/form-data": VersionUploadIn}, responses={201: VersionOut, 200: VersionOut})
    def post(self, request: Request, namespace: str, name: str) -> Response:
        """Upload a version: the files peft's ``save_pretrained`` wrote (or one tar/zip)."""
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        selectors.require_write(user=request.user, namespace=adapter.namespace)
        uploads = request.FILES
        _require_complete_body(request)
        form = {
            "files": uploads.getlist("files"),
            "base_model": request.data.get("base_model", ""),
            "aliases": request.data.getlist("aliases") if hasattr(request.data, "getlist") else [],
        }
        if "archive" in request.FILES:
            form["archive"] = request.FILES["archive"]
        metadata = request.data.get("metadata")
        if metadata not in (None, ""):
            form["metadata"] = metadata if isinstance(metadata, (str, bytes)) else json.dumps(metadata)
        data = validated(VersionUploadIn, form)
        if not isinstance(data["metadata"], dict):
            raise HubError("`metadata` must be a JSON object", field="metadata")
        card_data = validated(CardIn, data["metadata"])
        quant = card_data.get("quantization") or {}
        card = services.CardInput(
            base_model=data["base_model"] or None,
            task_tags=card_data["task_tags"],
            license=card_data["license"],
            datasets=card_data["datasets"],
            training_time_seconds=card_data.get("training_time_seconds"),
            training_hardware=card_data["training_hardware"],
            num_training_examples=card_data.get("num_training_examples"),
            training_run_url=card_data["training_run_url"],
            parent=card_data.get("parent"),
            quantization_bits=quant.get("bits"),
            quantization_type=quant.get("type", ""),
            extra=card_data["extra"],
        )
        with ExitStack() as stack:
            files, sizes = _upload_files(stack, data)
            version, created = services.adapter_version_create(
                adapter=adapter,
                user=request.user,
                files=files,
                sizes=sizes,
                card=card,
                aliases=data["aliases"],
            )
        version = selectors.version_resolve(adapter=adapter, ref=str(version.number))
        return Response(VersionOut(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _require_complete_body(request: Request) -> None:
    """Refuse a body shorter than its Content-Length.

    Django's multipart parser takes whatever arrived before the connection dropped, so a
    cut upload could otherwise be stored without its last files.
    """
    stream = getattr(request._request, "_stream", None)
    if isinstance(stream, LimitedStream) and stream._pos < stream.limit:
        raise UploadRejected(
            f"the upload was cut short: {stream._pos} of {stream.limit} bytes arrived; send it again",
            code="upload_incomplete",
            status_code=400,
        )


def _upload_files(stack: ExitStack, data: dict) -> tuple[dict, dict]:
    """The upload's files by name, from repeated ``files`` parts and/or one ``archive``."""
    files: dict = {}
    sizes: dict = {}

    def add(name: str, handle, size: int, field: str) -> None:
        if name in files:
            raise UploadRejected(f"file `{name}` was sent twice", file=name, field=field)
        files[name] = handle
        sizes[name] = size

    for upload in data["files"]:
        add(upload.name, upload, upload.size, "files")
    if "archive" in data:
        upload = data["archive"]
        if not archives.is_archive(upload.name):
            raise UploadRejected(
                f"`{upload.name}` is not a .tar, .tar.gz, .tgz or .zip archive",
                file=upload.name,
                field="archive",
            )
        limit = settings.PEFTHUB_MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise UploadRejected(
                f"{upload.name} is {upload.size} bytes; the upload limit is {limit} bytes",
                file=upload.name,
                field="archive",
                status_code=413,
            )
        unpacked, unpacked_sizes = archives.unpack_archive(
            stack, upload.name, upload, max_file_bytes=settings.PEFTHUB_MAX_FILE_BYTES
        )
        for name, handle in unpacked.items():
            add(name, handle, unpacked_sizes[name], "archive")
    return files, sizes


class VersionDetailApi(APIView):
    @extend_schema(responses=VersionOut)
    def get(self, request: Request, namespace: str, name: str, ref: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        return Response(VersionOut(selectors.version_resolve(adapter=adapter, ref=ref)).data)


class VersionDeprecateApi(APIView):
    @extend_schema(request=DeprecateIn, responses=VersionOut)
    def post(self, request: Request, namespace: str, name: str, ref: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        selectors.require_write(user=request.user, namespace=adapter.namespace)
        data = validated(DeprecateIn, request.data)
        version = selectors.version_resolve(adapter=adapter, ref=ref)
        services.adapter_version_deprecate(version=version, user=request.user, reason=data["reason"])
        return Response(VersionOut(selectors.version_resolve(adapter=adapter, ref=str(version.number))).data)


class VersionFileApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, namespace: str, name: str, ref: str, path: str):
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        version = selectors.version_resolve(adapter=adapter, ref=ref)
        entry = next((f for f in version.files.all() if f.path == path), None)
        if entry is None:
            raise NotFound(
                f"{adapter.full_name}@v{version.number} has no file `{path}`; it has: "
                + ", ".join(f.path for f in version.files.all()),
                code="entry_not_found",
            )
        from .blobstore import blob_open

        response = FileResponse(blob_open(entry.blob_id), as_attachment=True, filename=path)
        response["Content-Length"] = str(entry.blob.size)
        response["ETag"] = f'"{entry.blob_id}"'
        return response


class VersionArchiveApi(APIView):
    @extend_schema(
        # Not `format`: DRF reserves that query parameter for content negotiation.
        parameters=[OpenApiParameter("type", str, enum=["tar", "zip"], required=False)],
        responses={(200, "application/octet-stream"): bytes},
    )
    def get(self, request: Request, namespace: str, name: str, ref: str) -> StreamingHttpResponse:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        version = selectors.version_resolve(adapter=adapter, ref=ref)
        fmt = request.query_params.get("type", "tar")
        if fmt not in ("tar", "zip"):
            raise HubError(f"archive type `{fmt}` is not supported; use tar or zip", field="type")
        return version_archive_response(version, fmt)


# --- aliases ---------------------------------------------------------------------------------
class AliasListApi(APIView):
    @extend_schema(responses=AliasOut(many=True))
    def get(self, request: Request, namespace: str, name: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        return Response(AliasOut(adapter.aliases.select_related("version").all(), many=True).data)


class AliasDetailApi(APIView):
    @extend_schema(request=AliasSetIn, responses=AliasOut)
    def put(self, request: Request, namespace: str, name: str, alias: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        selectors.require_write(user=request.user, namespace=adapter.namespace)
        data = validated(AliasSetIn, request.data)
        version = selectors.version_resolve(adapter=adapter, ref=data["version"])
        return Response(
            AliasOut(services.alias_set(adapter=adapter, name=alias, version=version, user=request.user)).data
        )

    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, name: str, alias: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        selectors.require_write(user=request.user, namespace=adapter.namespace)
        services.alias_delete(adapter=adapter, name=alias, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- identity and tokens -------------------------------------------------------------------
class WhoamiApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        memberships = request.user.memberships.select_related("namespace")
        return Response(
            {
                "username": request.user.get_username(),
                "namespaces": [{"name": m.namespace.name, "role": m.role} for m in memberships],
            }
        )


class TokenListApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=TokenOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(TokenOut(request.user.api_tokens.all(), many=True).data)

    @extend_schema(request=TokenCreateIn, responses={201: dict})
    def post(self, request: Request) -> Response:
        data = validated(TokenCreateIn, request.data)
        token, secret = services.api_token_create(user=request.user, name=data["name"])
        return Response({**TokenOut(token).data, "token": secret}, status=status.HTTP_201_CREATED)


class TokenDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, token_id: int) -> Response:
        token = ApiToken.objects.filter(user=request.user, pk=token_id).first()
        if token is None:
            raise NotFound(f"you have no token {token_id}")
        services.api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)
