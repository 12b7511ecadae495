"""The Secret Backstage reads its static tokens from: two values and ArgoBridge's rotation annotations.

Always written whole (both keys and every annotation of ours) with server-side apply, because apply
removes fields ArgoBridge owned before and left out; other keys and annotations are not ours and stay.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from argobridge.core.rotation import ANNOTATION_PREFIX
from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import core_v1
from argobridge.kube.errors import KubeError, is_not_found


@dataclass(frozen=True)
class MirrorContent:
    """What the mirror Secret holds; `annotations` are only ours (argobridge.io/...)."""

    current: str | None = None
    previous: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print the values, even in a traceback's locals
        return f"MirrorContent(annotations={dict(self.annotations)!r})"


def _decode(data: Mapping[str, str], key: str) -> str | None:
    encoded = data.get(key)
    return base64.b64decode(encoded).decode("utf-8", errors="replace") if encoded is not None else None


def read_mirror(namespace: str, name: str, key: str, previous_key: str) -> MirrorContent:
    """The mirror's values and our annotations; empty when the Secret does not exist."""
    try:
        raw = core_v1().read_namespaced_secret(name, namespace, _preload_content=False)
    except ApiException as error:
        if is_not_found(error):
            return MirrorContent()
        raise KubeError(f"reading Secret {namespace}/{name}", error) from None
    body: dict[str, Any] = json.loads(raw.data)
    data = body.get("data") or {}
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    ours = {k: str(v) for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX)}
    return MirrorContent(_decode(data, key), _decode(data, previous_key), ours)


def apply_mirror(namespace: str, name: str, key: str, previous_key: str, content: MirrorContent) -> None:
    """Write both values and our annotations in one request, so Backstage never sees half a rotation."""
    assert content.current is not None and content.previous is not None
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": dict(content.annotations),
            "labels": {"app.kubernetes.io/managed-by": "argobridge"},
        },
        "data": {
            key: base64.b64encode(content.current.encode()).decode(),
            previous_key: base64.b64encode(content.previous.encode()).decode(),
        },
    }
    action = f"writing Secret {namespace}/{name} (Backstage's tokens)"
    server_side_apply(core_v1().patch_namespaced_secret, name, namespace, body=body, action=action)
