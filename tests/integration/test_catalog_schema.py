"""The CRD, served by a real kube-apiserver, takes `spec.subscriptions.entityRefFrom` and
`catalogInstanceName` and refuses what they cannot be at `kubectl apply` time."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from argobridge.core.spec import GROUP, PLURAL, VERSION
from tests.integration.test_bridge_reconcile import bridge, create_bridge


@pytest.mark.parametrize("mode", ["Annotation", "Catalog", "AnnotationThenCatalog"])
def test_each_entity_ref_from_is_accepted_and_kept_as_written(
    crds: list[str], bare_namespace: str, custom: client.CustomObjectsApi, mode: str
) -> None:
    create_bridge(custom, bridge(bare_namespace, subscriptions={"entityRefFrom": mode, "catalogInstanceName": "main"}))
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, bare_namespace, PLURAL, "backstage")
    assert stored["spec"]["subscriptions"] == {"entityRefFrom": mode, "catalogInstanceName": "main"}


@pytest.mark.parametrize(
    ("subscriptions", "field"),
    [
        ({"entityRefFrom": "catalog"}, "spec.subscriptions.entityRefFrom"),
        ({"catalogInstanceName": "two words"}, "spec.subscriptions.catalogInstanceName"),
        ({"catalogInstanceName": ""}, "spec.subscriptions.catalogInstanceName"),
    ],
)
def test_a_bad_value_is_refused_by_the_apiserver_naming_the_field(
    crds: list[str], bare_namespace: str, custom: client.CustomObjectsApi, subscriptions: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiException) as raised:
        create_bridge(custom, bridge(bare_namespace, subscriptions=subscriptions))
    assert raised.value.status == 422 and field in str(raised.value.body)
