"""REST: deploy/undeploy a version, see its deployment and the usage of served models."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub import selectors as hub_selectors
from hub.exceptions import NotFound

from . import selectors, services
from .models import Deployment
from .serializers import DeploymentOut, ReplicaOut, UsageOut


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
        user = hub_selectors.require_authenticated(user=request.user, action="deploying")
        deployment = services.deployment_activate(version=version, reason=Deployment.Reason.DEPLOYED, user=user)
        return Response(DeploymentOut(deployment).data)


class UndeployApi(APIView):
    @extend_schema(request=None, responses=DeploymentOut)
    def post(self, request: Request, namespace: str, name: str, ref: str) -> Response:
        version = _version(request, namespace, name, ref, write=True)
        user = hub_selectors.require_authenticated(user=request.user, action="undeploying")
        deployment = services.deployment_deactivate(version=version, reason=Deployment.Reason.UNDEPLOYED, user=user)
        if deployment is None:
            raise NotFound(f"{version} is not deployed")
        return Response(DeploymentOut(deployment).data)


class UsageListApi(APIView):
    @extend_schema(responses=UsageOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(UsageOut(selectors.usage_list(user=request.user), many=True).data)


class ReplicaListApi(APIView):
    """The engine replicas, their health (and why not healthy), and what each holds. Staff only."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses=ReplicaOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(ReplicaOut(selectors.replica_list(), many=True).data)
