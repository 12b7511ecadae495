"""Every pinned version of a binary the project builds from Go modules, in one place.

Users would download these from the projects' release pages; this machine reaches only the Go module
proxy, so each is built from its module at the version pinned here and cached under the user's cache
directory, keyed by that version.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GoTool:
    """A binary built from a package of a published Go module.

    `replace_version` is the version given to modules that the upstream go.mod replaces with a path
    inside its own repository (Kubernetes' staging modules are published as v0.x.y, etcd's siblings
    at the same version as the server), since `go build` ignores a dependency's relative replaces.
    """

    name: str
    module: str
    version: str
    package: str
    replace_version: str
    ldflags: tuple[str, ...] = ()
    extra_replaces: tuple[tuple[str, str, str], ...] = field(default=())
    tags: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Cache key: a new pin gets a new directory, an old build is never reused by mistake."""
        return f"{self.name}-{self.version}"


KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"

KUBE_APISERVER = GoTool(
    name="kube-apiserver",
    module="k8s.io/kubernetes",
    version=KUBERNETES_VERSION,
    package="k8s.io/kubernetes/cmd/kube-apiserver",
    replace_version="v0" + KUBERNETES_VERSION[2:],
    ldflags=(
        f"-X k8s.io/component-base/version.gitVersion={KUBERNETES_VERSION}",
        f"-X k8s.io/component-base/version.gitMajor={KUBERNETES_VERSION[1:].split('.')[0]}",
        f"-X k8s.io/component-base/version.gitMinor={KUBERNETES_VERSION.split('.')[1]}",
        "-X k8s.io/component-base/version.gitTreeState=clean",
    ),
)

ETCD = GoTool(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    version=ETCD_VERSION,
    package="go.etcd.io/etcd/server/v3",
    replace_version=ETCD_VERSION,
)

ARGO_CD_VERSION = "v3.5.7"

# The `argocd` multi-call binary; run as `argocd-notifications` it is the notifications controller.
# Its go.mod replaces the gitops-engine module with an in-tree directory that the module zip does not
# contain, and the version it requires is not served; the proxy serves three pseudo-versions of that
# module, and this is the newest one published before the release (it differs from the one before
# only by a panic guard in resource_ops.go).
ARGO_CD = GoTool(
    name="argocd",
    module="github.com/argoproj/argo-cd/v3",
    version=ARGO_CD_VERSION,
    package="github.com/argoproj/argo-cd/v3/cmd",
    replace_version="v0.0.0-20260914071520-c9c369efcc5b",
    ldflags=(
        f"-X github.com/argoproj/argo-cd/v3/common.version={ARGO_CD_VERSION[1:]}",
        "-X github.com/argoproj/argo-cd/v3/common.kubectlVersion=v0.36.1",
    ),
)

HELM_VERSION = "v3.22.0"

# Helm lints, renders and installs the chart in tests, as users do with the release binary.
HELM = GoTool(
    name="helm",
    module="helm.sh/helm/v3",
    version=HELM_VERSION,
    package="helm.sh/helm/v3/cmd/helm",
    replace_version=HELM_VERSION,
    ldflags=(f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}",),
)

# kind, only for `make e2e-kind` on machines with Docker; not built by `make tools`.
KIND = GoTool(
    name="kind",
    module="sigs.k8s.io/kind",
    version="v0.33.0",
    package="sigs.k8s.io/kind",
    replace_version="v0.33.0",
)


def _kubernetes(name: str) -> GoTool:
    """A Kubernetes binary at the local control plane's version, with the same version ldflags.

    kubeadm compares the versions the binaries report, so every one carries the gitVersion family.
    """
    return GoTool(
        name=name,
        module=KUBE_APISERVER.module,
        version=KUBERNETES_VERSION,
        package=f"k8s.io/kubernetes/cmd/{name}",
        replace_version=KUBE_APISERVER.replace_version,
        ldflags=KUBE_APISERVER.ldflags,
    )


# The kind node (`make e2e-kind`): its binaries and the images kubeadm expects, all built here since no
# image registry is reachable. Not built by `make tools`.
KUBELET = _kubernetes("kubelet")
KUBEADM = _kubernetes("kubeadm")
KUBECTL = _kubernetes("kubectl")
KUBE_CONTROLLER_MANAGER = _kubernetes("kube-controller-manager")
KUBE_SCHEDULER = _kubernetes("kube-scheduler")
KUBE_PROXY = _kubernetes("kube-proxy")

# `kind load` imports images with crictl/ctr inside the node.
CRICTL = GoTool(
    name="crictl",
    module="sigs.k8s.io/cri-tools",
    version="v1.34.0",
    package="sigs.k8s.io/cri-tools/cmd/crictl",
    replace_version="v1.34.0",
    ldflags=("-X sigs.k8s.io/cri-tools/pkg/version.Version=v1.34.0",),
)

# The cluster DNS kubeadm 1.34 deploys (registry.k8s.io/coredns/coredns:v1.12.1).
COREDNS = GoTool(
    name="coredns",
    module="github.com/coredns/coredns",
    version="v1.12.1",
    package="github.com/coredns/coredns",
    replace_version="v1.12.1",
)

KIND_NODE_TOOLS = (
    KUBELET,
    KUBEADM,
    KUBECTL,
    KUBE_CONTROLLER_MANAGER,
    KUBE_SCHEDULER,
    KUBE_PROXY,
    CRICTL,
    COREDNS,
)

ARGOCD_OPERATOR_VERSION = "v0.18.0"

# The Argo CD operator (the upstream of OpenShift GitOps), run against the local control plane to prove the
# OpenShift GitOps flavor. v0.18.0 is the newest release the module proxy serves (v0.19.0 and later answer
# "not available"); its go.mod has no in-tree replaces.
ARGOCD_OPERATOR = GoTool(
    name="argocd-operator",
    module="github.com/argoproj-labs/argocd-operator",
    version=ARGOCD_OPERATOR_VERSION,
    package="github.com/argoproj-labs/argocd-operator/cmd",
    replace_version=ARGOCD_OPERATOR_VERSION,
    ldflags=(f"-X github.com/argoproj-labs/argocd-operator/version.Version={ARGOCD_OPERATOR_VERSION[1:]}",),
)

# The module that holds the OpenShift Route CRD: the pseudo-version the operator's go.mod requires, so the
# Route the tests install is the one that operator was built against.
OPENSHIFT_API_MODULE = "github.com/openshift/api"
OPENSHIFT_API_VERSION = "v0.0.0-20240906151052-5d963dce87aa"

CONTROL_PLANE_TOOLS = (ETCD, KUBE_APISERVER)

ALL_TOOLS = (*CONTROL_PLANE_TOOLS, ARGO_CD, HELM, ARGOCD_OPERATOR)
