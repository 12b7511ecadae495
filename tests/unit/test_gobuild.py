"""The wrapper go.mod that lets `go build` use modules whose go.mod replaces siblings in-tree."""

from __future__ import annotations

from argobridge_dev.gobuild import parse_replaces, wrapper_go_mod
from argobridge_dev.versions import ETCD, KUBE_APISERVER

K8S_GO_MOD = """module k8s.io/kubernetes

go 1.24.0

require (
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go // a comment
)
replace github.com/x/y v1.0.0 => github.com/x/y v1.0.1
"""


def test_parse_replaces_reads_blocks_single_lines_and_comments():
    assert parse_replaces(K8S_GO_MOD) == [
        ("k8s.io/api", "./staging/src/k8s.io/api", ""),
        ("k8s.io/client-go", "./staging/src/k8s.io/client-go", ""),
        ("github.com/x/y", "github.com/x/y", "v1.0.1"),
    ]


def test_in_tree_replaces_become_published_staging_versions():
    text = wrapper_go_mod(KUBE_APISERVER, K8S_GO_MOD)
    assert "go 1.24.0" in text
    assert f"require k8s.io/kubernetes {KUBE_APISERVER.version}" in text
    assert "\tk8s.io/api => k8s.io/api v0.34" in text
    assert "\tgithub.com/x/y => github.com/x/y v1.0.1" in text
    assert "tool k8s.io/kubernetes/cmd/kube-apiserver" in text


def test_forbidden_placeholder_replaces_are_dropped():
    text = wrapper_go_mod(
        ETCD,
        "go 1.26.0\nreplace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY\nreplace go.etcd.io/etcd/api/v3 => ../api\n",
    )
    assert "FORBIDDEN" not in text
    assert f"go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 {ETCD.version}" in text


def test_controller_only_build_is_a_main_package_of_the_wrapper_requiring_the_same_argo_cd():
    from argobridge_dev.versions import ARGO_CD, ARGO_CD_NOTIFICATIONS

    text = wrapper_go_mod(
        ARGO_CD_NOTIFICATIONS, "go 1.25.0\nreplace github.com/argoproj/gitops-engine => ./gitops-engine\n"
    )
    assert "tool " not in text, "the wrapper builds its own main package, not a tool of the module"
    assert f"require {ARGO_CD.module} {ARGO_CD.version}" in text
    assert f"github.com/argoproj/gitops-engine => github.com/argoproj/gitops-engine {ARGO_CD.replace_version}" in text
    assert '"github.com/argoproj/argo-cd/v3/cmd/argocd-notification/commands"' in ARGO_CD_NOTIFICATIONS.main_source
    assert ARGO_CD_NOTIFICATIONS.ldflags == ARGO_CD.ldflags
