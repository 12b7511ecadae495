"""What `argobridge demo` prints: the kubectl-like line from the CRD's own columns, the notification verbatim."""

from __future__ import annotations

from datetime import UTC, datetime

from argobridge.kube.crds import crd_documents
from argobridge_dev.demo_view import (
    conditions_table,
    human_age,
    json_path,
    kubectl_table,
    notification_text,
    ownership_text,
    printer_columns,
)

BRIDGE = {
    "metadata": {"name": "backstage", "creationTimestamp": "2026-12-02T10:00:00Z"},
    "spec": {"backstage": {"url": "http://127.0.0.1:7007"}},
    "status": {
        "flavor": "ArgoCD",
        "applications": {"watched": 1, "subscribed": 1},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "all good"},
            {"type": "BackstageReachable", "status": "True", "reason": "TokenAccepted", "message": "accepted"},
        ],
    },
}


def bridge_crd():
    return next(doc for doc in crd_documents() if doc["spec"]["names"]["plural"] == "backstagebridges")


def test_json_path_reads_plain_fields_and_condition_filters():
    assert json_path(BRIDGE, ".status.flavor") == "ArgoCD"
    assert json_path(BRIDGE, '.status.conditions[?(@.type=="BackstageReachable")].reason') == "TokenAccepted"
    assert json_path(BRIDGE, '.status.conditions[?(@.type=="Delivering")].reason') is None
    assert json_path({}, ".status.applications.subscribed") is None


def test_kubectl_line_has_the_crds_default_columns_in_order():
    now = datetime(2026, 12, 2, 10, 0, 41, tzinfo=UTC)
    header, row = kubectl_table(printer_columns(bridge_crd()), [BRIDGE], now).splitlines()
    assert header.split() == ["NAME", "READY", "REASON", "BACKSTAGE", "SUBSCRIBED", "PENDING", "FLAVOR", "AGE"]
    assert row.split() == ["backstage", "True", "Ready", "TokenAccepted", "1", "<none>", "ArgoCD", "41s"]
    assert header.index("READY") == row.index("True"), "columns line up"


def test_a_missing_value_shows_as_kubectl_shows_it():
    now = datetime(2026, 12, 2, 10, 0, 41, tzinfo=UTC)
    bare = {"metadata": {"name": "b", "creationTimestamp": "2026-12-02T10:00:00Z"}}
    assert "<none>" in kubectl_table(printer_columns(bridge_crd()), [bare], now).splitlines()[1]


def test_ages_read_like_kubectl():
    assert [human_age(s) for s in (5, 119, 312, 3000, 4 * 3600 + 60, 30 * 3600, 3 * 86400)] == [
        "5s",
        "119s",
        "5m12s",
        "50m",
        "4h1m",
        "30h",
        "3d",
    ]


def test_conditions_table_lists_each_condition():
    lines = conditions_table(BRIDGE).splitlines()
    assert lines[0].split() == ["CONDITION", "STATUS", "REASON", "MESSAGE"]
    assert lines[2].split()[:3] == ["BackstageReachable", "True", "TokenAccepted"]


def test_notification_is_printed_verbatim_with_who_received_it():
    item = {
        "origin": "argocd",
        "created": "2026-12-02T10:00:40.000Z",
        "payload": {
            "title": "shop: sync failed",
            "description": 'line one "quoted"\nline two',
            "link": "https://argocd.example.com/applications/argobridge-demo/shop",
            "severity": "high",
            "topic": "argocd.sync.failed",
            "scope": "argocd/argobridge-demo/shop/SyncFailed",
        },
    }
    why = ownership_text(
        "component:default/shop",
        {"spec": {"owner": "group:default/team-a"}},
        {"group:default/team-a": ["user:default/alice"]},
    )
    text = notification_text(item, "user:default/alice", ["user:default/alice"], ["user:default/bob"], why)
    assert "title:       shop: sync failed" in text
    assert 'line one "quoted"\n' in text and "line two" in text
    assert "link:        https://argocd.example.com/applications/argobridge-demo/shop" in text
    assert "received by: user:default/alice" in text
    assert "owned by group:default/team-a, whose members are user:default/alice" in text
    assert "not sent to: user:default/bob" in text
