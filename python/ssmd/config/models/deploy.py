"""The `deploy:` section of an environment: how `ssmd deploy render` lays it out in Kubernetes.

Only what differs between clusters lives here (image, replica counts, storage class,
ingress host, resources); everything else in the manifests follows from the rest of the
environment (docs/deploy.md). Checks that span sections (a stream with more replicas
than NATS servers, a gateway without API keys) are made when rendering, where the whole
environment is known.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, StringConstraints

from ssmd.config.models.common import PATTERN_HINTS, Key, StrictModel

DEFAULT_IMAGE: Final = "ghcr.io/ssmd/ssmd:latest"
DEFAULT_NATS_IMAGE: Final = "nats:2.10-alpine"

QUANTITY_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"
IMAGE_PATTERN: Final = r"^[a-z0-9][a-z0-9._/:@-]*[a-z0-9]$"
HOST_PATTERN: Final = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
K8S_NAME_PATTERN: Final = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
DEPLOY_SECRET_PATTERN: Final = r"^(secret|sealed):[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"

PATTERN_HINTS.update(
    {
        QUANTITY_PATTERN: "a Kubernetes quantity such as 500m, 1, 256Mi or 10Gi",
        IMAGE_PATTERN: "an image reference such as ghcr.io/ssmd/ssmd:0.1.0",
        HOST_PATTERN: "a DNS host name such as ssmd.example.com",
        K8S_NAME_PATTERN: "a Kubernetes name: lower-case letters, digits and '-', e.g. fast-ssd",
        DEPLOY_SECRET_PATTERN: "secret:NAME (an existing Secret) or sealed:NAME (a SealedSecret)",
    }
)

Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)]
K8sName = Annotated[str, StringConstraints(pattern=K8S_NAME_PATTERN)]


class Resources(StrictModel):
    cpu: Quantity = Field(default="100m", description="CPU request.")
    memory: Quantity = Field(default="256Mi", description="Memory request, and its limit.")
    cpu_limit: Quantity | None = Field(default=None, description="CPU limit; absent = none.")


def _resources(cpu: str, memory: str) -> Resources:
    return Resources(cpu=cpu, memory=memory)


class NatsDeploy(StrictModel):
    image: Annotated[str, StringConstraints(pattern=IMAGE_PATTERN)] = DEFAULT_NATS_IMAGE
    replicas: int = Field(
        default=3, ge=1, le=7, description="JetStream servers: 1, or an odd number from 3."
    )
    storage: Quantity = Field(default="10Gi", description="JetStream volume per server.")
    resources: Resources = Field(default_factory=lambda: _resources("250m", "1Gi"))


class ConnectorDeploy(StrictModel):
    shard_groups: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Connector Deployments; group i of N runs `--shard-group i/N`.",
    )
    resources: Resources = Field(default_factory=lambda: _resources("500m", "512Mi"))


class ArchiverDeploy(StrictModel):
    storage: Quantity = Field(default="20Gi", description="Volume of the spool and local archives.")
    resources: Resources = Field(default_factory=lambda: _resources("500m", "1Gi"))


class GatewayDeploy(StrictModel):
    replicas: int = Field(default=2, ge=1, le=50)
    ingress_host: Annotated[str, StringConstraints(pattern=HOST_PATTERN)] | None = Field(
        default=None, description="Host of the Ingress; absent = no Ingress."
    )
    ingress_class: K8sName | None = Field(
        default=None, description="ingressClassName; absent = the cluster's default."
    )
    tls_secret: K8sName | None = Field(
        default=None, description="Secret with the Ingress' TLS certificate; absent = no TLS."
    )
    resources: Resources = Field(default_factory=lambda: _resources("500m", "512Mi"))


class SmallDeploy(StrictModel):
    resources: Resources = Field(default_factory=lambda: _resources("100m", "256Mi"))


class ArgoCD(StrictModel):
    repo_url: str | None = Field(
        default=None, description="Git repository holding the rendered manifests."
    )
    revision: str = Field(default="HEAD", description="Branch, tag or commit to follow.")
    path: str = Field(
        default="deploy/k8s", description="Folder of the rendered manifests in that repository."
    )
    project: K8sName = "default"
    namespace: K8sName = Field(default="argocd", description="Where ArgoCD runs.")


class Deploy(StrictModel):
    image: Annotated[str, StringConstraints(pattern=IMAGE_PATTERN)] = Field(
        default=DEFAULT_IMAGE, description="ssmd's image (deploy/Dockerfile)."
    )
    namespace: K8sName | None = Field(default=None, description="Absent = ssmd-<environment>.")
    storage_class: K8sName | None = Field(
        default=None, description="StorageClass of every volume; required to render."
    )
    nats: NatsDeploy = Field(default_factory=NatsDeploy)
    connector: ConnectorDeploy = Field(default_factory=ConnectorDeploy)
    archiver: ArchiverDeploy = Field(default_factory=ArchiverDeploy)
    gateway: GatewayDeploy = Field(default_factory=GatewayDeploy)
    secmaster: SmallDeploy = Field(default_factory=SmallDeploy)
    worker: SmallDeploy = Field(default_factory=SmallDeploy)
    simulator: SmallDeploy = Field(default_factory=SmallDeploy)
    secrets: dict[Key, Annotated[str, StringConstraints(pattern=DEPLOY_SECRET_PATTERN)]] = Field(
        default_factory=dict,
        description=(
            "spec.secrets name -> the Kubernetes Secret holding it: secret:NAME or sealed:NAME; "
            "absent = secret:<environment>-<name>."
        ),
    )
    argocd: ArgoCD = Field(default_factory=ArgoCD)
