"""REST: deploy/undeploy a version, see its deployment and the usage of served models."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import selectors as hub_selectors
from hub.exceptions import NotFound

from . import selectors, services
from .models import Deployment
from .serializers import DeploymentOut, UsageOut


def _version(request: Request, namespace: str, name: str, ref: str, *, write: bool):
    adapter = hub_selectors.adapter_get(user=request.user, namespace=namespace, name=name)
    if write:
        hub_selectors.require_write(user=request.user, namespace=adapter.namespace)
    return hub_selectors.version_resolve(adapter=adapter, ref=ref)


class DeploymentApi(APIView):
    @extend_schema(responses=DeploymentOut)
    def get(self, request: Request, namespace: str, name: str, ref: str) -> Response:
        version = _version(request, namespace, name, ref, write=False)
        deployment = selectors.deployment_for(version=version)
        if deployment is None:
            raise NotFound(f"{version} has never been deployed")
        return Response(DeploymentOut(deployment).data)


class DeployApi(APIView):
    @extend_schema(request=None, responses=DeploymentOut)
    def post(self, request: Request, namespace: str, name: str, ref: str) -> Response:
        version = _version(request, namespace, name, ref, write=True)
        deployment = services.deployment_activate(version=version, reason=Deployment.Reason.DEPLOYED, user=request.user)
        return Response(DeploymentOut(deployment).data)


class UndeployApi(APIView):
    @extend_schema(request=None, responses=DeploymentOut)
    def post(self, request: Request, namespace: str, name: str, ref: str) -> Response:
        version = _version(request, namespace, name, ref, write=True)
        deployment = services.deployment_deactivate(
            version=version, reason=Deployment.Reason.UNDEPLOYED, user=request.user
        )
        if deployment is None:
            raise NotFound(f"{version} is not deployed")
        return Response(DeploymentOut(deployment).data)


class UsageListApi(APIView):
    @extend_schema(responses=UsageOut(many=True))
    def get(self, request: Request) -> Response:
        usage = selectors.usage_list(user=request.user).select_related("base_model")
        return Response(UsageOut(usage, many=True).data)
