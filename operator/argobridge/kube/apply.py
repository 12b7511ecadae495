"""Server-side apply as ArgoBridge's field manager: the one way the operator writes objects it shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from argobridge.core.configplan import FIELD_MANAGER
from argobridge.kube.errors import KubeError

APPLY_PATCH = "application/apply-patch+yaml"


def server_side_apply(
    patch: Callable[..., Any], *target: str, body: Mapping[str, Any], action: str, manager: str = FIELD_MANAGER
) -> Any:
    """Call a client `patch_*` method as an apply of `body`, forcing ownership of exactly its fields.

    Fields ArgoBridge applied before and leaves out of `body` are removed by the apiserver; fields other
    managers own are untouched. `manager` names the writer (one per bridge where bridges may share an
    object). Errors come back as `KubeError`, without the request body.
    """
    try:
        return patch(*target, dict(body), field_manager=manager, force=True, _content_type=APPLY_PATCH)
    except ApiException as error:
        raise KubeError(action, error) from None
