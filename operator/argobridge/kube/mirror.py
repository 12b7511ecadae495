"""The Secret Backstage reads its static tokens from: two values and ArgoBridge's rotation annotations.

Written only into a Secret that ArgoBridge created for the bridge or that opted in (see
core/mirrorpolicy.py). A missing Secret is created with a plain create, which fails rather than take
over one that appeared meanwhile; its content is then always written whole (both keys and every
annotation of ours) with server-side apply as the bridge's own field manager, because apply removes
fields that manager owned before and left out. Other keys, labels and annotations are not ours and stay.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from argobridge.core.mirrorpolicy import MIRROR_FOR_ANNOTATION
from argobridge.core.rotation import ANNOTATION_PREFIX, LAST_ROTATION
from argobridge.kube import snapshot
from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import core_v1
from argobridge.kube.errors import KubeError, is_not_found

# What versions before the opt-in set on every mirror they wrote.
_LEGACY_LABEL = ("app.kubernetes.io/managed-by", "argobridge")


@dataclass(frozen=True)
class MirrorContent:
    """What the mirror Secret holds; `annotations` are only ours (argobridge.io/..., the opt-in excepted).

    `mirror_for` is the bridge the Secret is the mirror of, `legacy` whether an ArgoBridge from before
    the opt-in wrote it.
    """

    current: str | None = None
    previous: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    exists: bool = False
    mirror_for: str | None = None
    legacy: bool = False

    def __repr__(self) -> str:  # never print the values, even in a traceback's locals
        return f"MirrorContent(annotations={dict(self.annotations)!r}, exists={self.exists})"


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
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    labels = metadata.get("labels") or {}
    ours = {k: str(v) for k, v in annotations.items() if k.startswith(ANNOTATION_PREFIX) and k != MIRROR_FOR_ANNOTATION}
    legacy = labels.get(_LEGACY_LABEL[0]) == _LEGACY_LABEL[1] and LAST_ROTATION in ours
    mirror_for = annotations.get(MIRROR_FOR_ANNOTATION)
    return MirrorContent(
        _decode(data, key),
        _decode(data, previous_key),
        ours,
        exists=True,
        mirror_for=str(mirror_for) if mirror_for is not None else None,
        legacy=legacy,
    )


def create_mirror(namespace: str, name: str, bridge: str, manager: str) -> None:
    """Create the empty mirror Secret, marked as this bridge's; fails (409) if one exists by now."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "annotations": {MIRROR_FOR_ANNOTATION: bridge}},
    }
    snapshot.forget("Secret", namespace, name)
    try:
        core_v1().create_namespaced_secret(namespace, body, field_manager=manager)
    except ApiException as error:
        raise KubeError(f"creating Secret {namespace}/{name} (Backstage's tokens)", error) from None


def apply_mirror(
    namespace: str,
    name: str,
    key: str,
    previous_key: str,
    content: MirrorContent,
    manager: str,
    owner: str,
    forget: Sequence[str] = (),
) -> None:
    """Write both values and our annotations in one request, so Backstage never sees half a rotation.

    `owner` (the bridge) is always applied as the opt-in annotation too: that records the claim on a
    Secret an earlier ArgoBridge wrote without one, and keeps the annotation ours once applied. `forget`
    names annotations of ours to remove that the earlier version's field manager still owns (apply
    removes only what its own manager owns).
    """
    assert content.current is not None and content.previous is not None
    annotations = {**content.annotations, MIRROR_FOR_ANNOTATION: owner}
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "data": {
            key: base64.b64encode(content.current.encode()).decode(),
            previous_key: base64.b64encode(content.previous.encode()).decode(),
        },
    }
    action = f"writing Secret {namespace}/{name} (Backstage's tokens)"
    snapshot.forget("Secret", namespace, name)
    server_side_apply(core_v1().patch_namespaced_secret, name, namespace, body=body, action=action, manager=manager)
    if forget:
        patch = {"metadata": {"annotations": dict.fromkeys(forget)}}
        try:
            core_v1().patch_namespaced_secret(
                name, namespace, patch, field_manager=manager, _content_type="application/merge-patch+json"
            )
        except ApiException as error:
            raise KubeError(action, error) from None
