"""Thin DRF views: validate the request, call one service or selector, translate."""

from __future__ import annotations

from contextlib import ExitStack

from django.conf import settings
from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .cards import CardInput
from .exceptions import HubError, NotFound, UploadRejected, UploadTooLarge
from .filters import CatalogFilterSet
from .pagination import AdapterPagination
from .permissions import ManagesTokens, TokenScope, request_token
from .serializers import (
    AdapterCreateIn,
    AdapterOut,
    AdapterUpdateIn,
    AliasOut,
    AliasSetIn,
    BaseModelAddIn,
    BaseModelImportOut,
    BaseModelOut,
    CardIn,
    DeprecateIn,
    MemberSetIn,
    NamespaceCreateIn,
    NamespaceOut,
    TokenCreateIn,
    TokenOut,
    VersionOut,
    VersionUploadIn,
)
from .storage import archives
from .storage.downloads import version_archive_response
from .storage.ranges import blob_response, fetches_from_start


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

    @extend_schema(request=BaseModelAddIn, responses={202: BaseModelImportOut})
    def post(self, request: Request) -> Response:
        """Staff: add a base model (or a new revision of one) from a Hugging Face hub.

        What the download cannot change is checked here (a 4xx saying what to fix); the
        download runs on a worker: 202 with the download to poll (its ``url``). Asked again
        while it runs, the same download is answered."""
        selectors.require_staff(user=request.user, action="adding a base model")
        data = validated(BaseModelAddIn, request.data)
        job, _created = services.base_model_import_request(
            user=request.user,
            repo_id=data["from_hub"],
            revision=data["revision"],
            name=data["name"],
            aliases=[*data["aliases"], *([data["alias"]] if "alias" in data else [])],
            license=data["license"],
            display_name=data["display_name"],
        )
        job.refresh_from_db()  # eager Celery (tests, a single process) may have run it already
        body = BaseModelImportOut(job).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class BaseModelImportListApi(APIView):
    @extend_schema(responses=BaseModelImportOut(many=True))
    def get(self, request: Request) -> Response:
        """Staff: base model downloads, newest first (the latest 100)."""
        jobs = selectors.base_model_import_list(user=request.user)[:100]
        return Response(BaseModelImportOut(jobs, many=True).data)


class BaseModelImportDetailApi(APIView):
    @extend_schema(responses=BaseModelImportOut)
    def get(self, request: Request, import_id: int) -> Response:
        """Staff: one download: ``queued``, ``running``, ``done`` (with the base model) or
        ``failed`` (with why)."""
        job = selectors.base_model_import_get(user=request.user, import_id=import_id)
        return Response(BaseModelImportOut(job).data)


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
        owner = selectors.require_authenticated(user=request.user, action="creating a namespace")
        data = validated(NamespaceCreateIn, request.data)
        namespace = services.namespace_create(owner=owner, **data)
        return Response(NamespaceOut(namespace).data, status=status.HTTP_201_CREATED)


class NamespaceMemberApi(APIView):
    permission_classes = [IsAuthenticated, TokenScope]

    @extend_schema(request=MemberSetIn, responses={200: None})
    def put(self, request: Request, namespace: str) -> Response:
        ns = selectors.namespace_get(name=namespace)
        selectors.require_owner(user=request.user, namespace=ns)
        data = validated(MemberSetIn, request.data)
        user = selectors.user_get(username=data["username"])
        services.membership_set(namespace=ns, user=user, role=data["role"])
        return Response({"namespace": ns.name, "username": user.get_username(), "role": data["role"]})


# --- adapters --------------------------------------------------------------------------------
class AdapterListApi(GenericAPIView):
    """The catalog (filtered by :class:`hub.filters.CatalogFilterSet`), and new adapters."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = CatalogFilterSet
    pagination_class = AdapterPagination

    def get_queryset(self):
        return selectors.adapter_list(user=self.request.user)

    @extend_schema(responses=AdapterOut(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(AdapterOut(page, many=True).data)

    @extend_schema(request=AdapterCreateIn, responses={201: AdapterOut})
    def post(self, request: Request) -> Response:
        data = validated(AdapterCreateIn, request.data)
        namespace = selectors.namespace_get(name=data.pop("namespace"))
        selectors.require_write(user=request.user, namespace=namespace)
        user = selectors.require_authenticated(user=request.user, action="creating an adapter")
        adapter = services.adapter_create(namespace=namespace, user=user, **data)
        return Response(AdapterOut(adapter).data, status=status.HTTP_201_CREATED)


class AdapterDetailApi(APIView):
    @extend_schema(responses=AdapterOut)
    def get(self, request: Request, namespace: str, name: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        return Response(AdapterOut(adapter).data)

    @extend_schema(request=AdapterUpdateIn, responses=AdapterOut)
    def patch(self, request: Request, namespace: str, name: str) -> Response:
        adapter = selectors.adapter_get_writable(user=request.user, namespace=namespace, name=name)
        user = selectors.require_authenticated(user=request.user, action="changing an adapter")
        data = validated(AdapterUpdateIn, request.data)
        adapter = services.adapter_update(adapter=adapter, user=user, **data)
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
        adapter = selectors.adapter_get_writable(user=request.user, namespace=namespace, name=name)
        user = selectors.require_authenticated(user=request.user, action="uploading a version")
        # Parsing the body happens here, after the permission check (hub.uploads refuses a cut one).
        data = validated(VersionUploadIn, request.data)
        card = CardInput.from_metadata(validated(CardIn, data["metadata"]), base_model=data["base_model"])
        with ExitStack() as stack:
            files, sizes = _upload_files(stack, data)
            version, created = services.adapter_version_create(
                adapter=adapter,
                user=user,
                files=files,
                sizes=sizes,
                card=card,
                aliases=data["aliases"],
            )
        version = selectors.version_resolve(adapter=adapter, ref=str(version.number))
        return Response(VersionOut(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


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
            raise UploadTooLarge(
                f"{upload.name} is {upload.size} bytes; the upload limit is {limit} bytes",
                file=upload.name,
                field="archive",
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
        adapter = selectors.adapter_get_writable(user=request.user, namespace=namespace, name=name)
        user = selectors.require_authenticated(user=request.user, action="deprecating a version")
        data = validated(DeprecateIn, request.data)
        version = selectors.version_resolve(adapter=adapter, ref=ref)
        services.adapter_version_deprecate(version=version, user=user, reason=data["reason"])
        return Response(VersionOut(selectors.version_resolve(adapter=adapter, ref=str(version.number))).data)


class VersionFileApi(APIView):
    @extend_schema(responses={(200, "application/octet-stream"): bytes, (206, "application/octet-stream"): bytes})
    def get(self, request: Request, namespace: str, name: str, ref: str, path: str) -> HttpResponseBase:
        """A file of a version, whole or one byte range (``Range: bytes=first-last``)."""
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        version = selectors.version_resolve(adapter=adapter, ref=ref)
        entry = selectors.version_file_get(version=version, path=path)
        response = blob_response(request, sha256=entry.blob_id, size=entry.blob.size, path=path, attachment=True)
        if path in services.DOWNLOAD_FILES and fetches_from_start(request, response):
            services.version_download_count(version=version)
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
        response = version_archive_response(version, fmt)
        if request.method == "GET":  # the archive holds adapter_config.json: one download
            services.version_download_count(version=version)
        return response


# --- aliases ---------------------------------------------------------------------------------
class AliasListApi(APIView):
    @extend_schema(responses=AliasOut(many=True))
    def get(self, request: Request, namespace: str, name: str) -> Response:
        adapter = selectors.adapter_get(user=request.user, namespace=namespace, name=name)
        return Response(AliasOut(selectors.alias_list(adapter=adapter), many=True).data)


class AliasDetailApi(APIView):
    @extend_schema(request=AliasSetIn, responses=AliasOut)
    def put(self, request: Request, namespace: str, name: str, alias: str) -> Response:
        adapter = selectors.adapter_get_writable(user=request.user, namespace=namespace, name=name)
        user = selectors.require_authenticated(user=request.user, action="setting an alias")
        data = validated(AliasSetIn, request.data)
        version = selectors.version_resolve(adapter=adapter, ref=data["version"])
        return Response(AliasOut(services.alias_set(adapter=adapter, name=alias, version=version, user=user)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, namespace: str, name: str, alias: str) -> Response:
        adapter = selectors.adapter_get_writable(user=request.user, namespace=namespace, name=name)
        user = selectors.require_authenticated(user=request.user, action="deleting an alias")
        services.alias_delete(adapter=adapter, name=alias, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- identity and tokens -------------------------------------------------------------------
class WhoamiApi(APIView):
    permission_classes = [IsAuthenticated, TokenScope]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        user = selectors.require_authenticated(user=request.user, action="whoami")
        memberships = selectors.membership_list(user=user)
        return Response(
            {
                "username": user.get_username(),
                "namespaces": [{"name": m.namespace.name, "role": m.role} for m in memberships],
            }
        )


class TokenListApi(APIView):
    permission_classes = [ManagesTokens]

    @extend_schema(responses=TokenOut(many=True))
    def get(self, request: Request) -> Response:
        user = selectors.require_authenticated(user=request.user, action="listing tokens")
        return Response(TokenOut(user.api_tokens.all(), many=True).data)

    @extend_schema(request=TokenCreateIn, responses={201: dict})
    def post(self, request: Request) -> Response:
        user = selectors.require_authenticated(user=request.user, action="creating a token")
        data = validated(TokenCreateIn, request.data)
        token, secret = services.api_token_create(
            user=user,
            name=data["name"],
            scopes=data.get("scopes"),
            expires_at=data.get("expires_at"),
            created_by_token=request_token(request),
        )
        return Response({**TokenOut(token).data, "token": secret}, status=status.HTTP_201_CREATED)


class TokenDetailApi(APIView):
    permission_classes = [ManagesTokens]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, token_id: int) -> Response:
        services.api_token_revoke(token=selectors.api_token_get(user=request.user, token_id=token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
