"""The relay's config Secret: read, write and remove exactly one bridge's data key.

The chart owns the Secret; each bridge owns one data key through server-side apply as its own field
manager (`argobridge/<ns>/<name>`), so keys of other bridges or of people are never touched. Writes carry
the Secret's uid: a Secret that is missing (or was replaced) is refused, never created. Values (they hold
tokens) pass through here in clear and nowhere else: nothing logs, errors carry no payload.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from argobridge.kube import secrets, snapshot
from argobridge.kube.apply import server_side_apply
from argobridge.kube.client import core_v1


@dataclass(frozen=True)
class ObservedEntry:
    """The config Secret's uid (None: the Secret does not exist) and the bridge's current value."""

    uid: str | None
    value: str | None = field(default=None, repr=False)


def read_entry(namespace: str, name: str, key: str) -> ObservedEntry:
    """One bridge's entry, read through the reconcile's snapshot (one GET per reconcile)."""
    uid = secrets.secret_uid(namespace, name)
    if uid is None:
        return ObservedEntry(None)
    return ObservedEntry(uid, secrets.read_secret_key(namespace, name, key))


def _apply(namespace: str, name: str, uid: str, data: dict[str, str], manager: str, action: str) -> None:
    body: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
    }
    if data:
        body["data"] = data
    snapshot.forget("Secret", namespace, name)
    # Forced: the key is this bridge's by name; someone who edited it by hand is overruled, as the
    # relay must hold what the bridge says. Other keys are not in the body, so they are never touched.
    server_side_apply(core_v1().patch_namespaced_secret, name, namespace, body=body, action=action, manager=manager)


def write_entry(namespace: str, name: str, uid: str, key: str, value: str, manager: str) -> None:
    """Apply this bridge's key (and only it) as `manager`."""
    encoded = base64.b64encode(value.encode()).decode()
    _apply(namespace, name, uid, {key: encoded}, manager, f"writing key {key} of Secret {namespace}/{name}")


def remove_entry(namespace: str, name: str, uid: str, key: str, manager: str) -> None:
    """Take this bridge's key out: an apply of nothing releases (and so removes) every field `manager` owned."""
    _apply(namespace, name, uid, {}, manager, f"removing key {key} of Secret {namespace}/{name}")
