"""Operator-wide kopf settings: our own prefixes for everything kopf stores on our objects."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from argobridge.core.spec import GROUP

PREFIX = GROUP


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """Set kopf up once: standalone, argobridge.io/ finalizer and annotations, Events only for warnings."""
    settings.peering.standalone = True
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # Client libraries log every request at INFO/DEBUG; request bodies may carry Secret data.
    for name in ("kubernetes", "urllib3", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster service account first, else the kubeconfig that KUBECONFIG names right now."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
