"""Publish what a reconcile did to the metrics, including the token's age read back from its Secret."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from argobridge import metrics
from argobridge.core.metricsview import view_of
from argobridge.core.spec import SpecError, parse_bridge_spec
from argobridge.core.status import ReconcileReport
from argobridge.kube import secrets
from argobridge.kube.errors import TRANSPORT_ERRORS, KubeError

log = logging.getLogger(__name__)


def observe_reconcile(body: Mapping[str, Any], report: ReconcileReport, seconds: float) -> None:
    """Count the reconcile, its failures and probe, the Applications, and the token's age."""
    metadata = body.get("metadata") or {}
    namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
    metrics.record_reconcile(namespace, name, view_of(report.conditions, report.applications), seconds)
    try:
        spec = parse_bridge_spec(body.get("spec") or {})
        written = secrets.read_key_written_at(namespace, spec.secret_name, spec.token_key)
    except (SpecError, KubeError, *TRANSPORT_ERRORS) as error:
        log.debug("Token age of %s/%s unknown: %s", namespace, name, type(error).__name__)
        return
    metrics.record_token_written(namespace, name, written)
