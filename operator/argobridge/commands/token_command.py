"""`argobridge rotate-token`: ask the operator for a rotation by annotating the bridge.

The annotation is the whole interface, so `kubectl annotate` does the same; the operator records
which request it answered in the mirror Secret and answers each value once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from argobridge.core.rotation import ROTATE_REQUEST_ANNOTATION
from argobridge.core.spec import GROUP, PLURAL, VERSION
from argobridge.kube.client import custom_objects
from argobridge.kube.errors import KubeError


def request_rotation(namespace: str, name: str) -> str:
    """Set the request annotation to a new value (the current time) and return it."""
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"metadata": {"annotations": {ROTATE_REQUEST_ANNOTATION: value}}}
    try:
        custom_objects().patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch, _content_type="application/merge-patch+json"
        )
    except ApiException as error:
        raise KubeError(f"annotating BackstageBridge {namespace}/{name}", error) from None
    return value


def rotate_token_command(namespace: str, name: str) -> int:
    try:
        value = request_rotation(namespace, name)
    except KubeError as error:
        print(f"error: {error}")
        return 1
    print(f"Rotation requested for BackstageBridge {namespace}/{name} ({ROTATE_REQUEST_ANNOTATION}={value}).")
    print(
        "The operator publishes a new token to Backstage's Secret, switches Argo CD once Backstage accepts it,"
        " and retires the old one after the grace period. Follow it with:"
    )
    print(f"  kubectl -n {namespace} get backstagebridge {name} -o jsonpath='{{.status.token.phase}}'")
    return 0
