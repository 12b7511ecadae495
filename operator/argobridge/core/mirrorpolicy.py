"""Which Secret the token mirror may write into: one ArgoBridge created for the bridge, or one that opted in.

The mirror names a Secret in any namespace (Backstage's). Writing into any Secret so named would let a
bridge's author overwrite Secrets of others (Backstage's Helm-managed one, Argo CD's own), and two
bridges naming one Secret would fight over it. So a Secret is written only when its annotation
`argobridge.io/mirror-for` names this bridge: ArgoBridge sets it when it creates the Secret, and a
user sets it to hand an existing Secret over. Everything else is refused with the annotation to add.
"""

from __future__ import annotations

import hashlib

MIRROR_FOR_ANNOTATION = "argobridge.io/mirror-for"
FIELD_MANAGER_PREFIX = "argobridge"
_MAX_MANAGER_LENGTH = 128  # the apiserver refuses longer field managers


def bridge_ref(namespace: str, name: str) -> str:
    """How a bridge is named in the mirror's annotation: `<namespace>/<name>`."""
    return f"{namespace}/{name}"


def bridge_field_manager(namespace: str, name: str) -> str:
    """The field manager of one bridge's writes (`argobridge/<ns>.<name>`), so two bridges never
    remove each other's fields; shortened with a digest when it would be too long for the apiserver."""
    manager = f"{FIELD_MANAGER_PREFIX}/{namespace}.{name}"
    if len(manager) <= _MAX_MANAGER_LENGTH:
        return manager
    digest = hashlib.sha256(manager.encode()).hexdigest()[:12]
    return f"{manager[: _MAX_MANAGER_LENGTH - 13]}-{digest}"


def mirror_refusal(
    exists: bool, mirror_for: str | None, legacy: bool, this_bridge: str, namespace: str, name: str
) -> str | None:
    """Why the mirror must not write into Secret `namespace/name`, or None when it may.

    `legacy`: the Secret carries ArgoBridge's rotation annotations from before the opt-in existed, so an
    earlier ArgoBridge wrote it; the first bridge to write it again claims it.
    """
    if not exists or mirror_for == this_bridge or (mirror_for is None and legacy):
        return None
    where = f"Secret {namespace}/{name}"
    if mirror_for:
        return (
            f"{where} is the token mirror of BackstageBridge {mirror_for} (annotation {MIRROR_FOR_ANNOTATION});"
            " two bridges cannot share one mirror: point spec.token.mirror of this bridge at a Secret of its own"
        )
    return (
        f"{where} exists and was not created by ArgoBridge, so ArgoBridge leaves it untouched. To let this"
        f" bridge write the token into it, annotate it: kubectl annotate secret {name} -n {namespace}"
        f" {MIRROR_FOR_ANNOTATION}={this_bridge}; or name a Secret that does not exist yet in"
        " spec.token.mirror.name, and ArgoBridge creates it"
    )
