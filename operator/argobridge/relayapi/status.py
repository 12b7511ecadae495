"""Read every relay replica's /v1/status, in parallel, each with a short timeout.

Why a short timeout and no retry: this runs on a timer every few seconds; a replica that does not
answer within 2 s is reported as not answering (the core decides what that means) and asked again
at the next tick, rather than holding a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from argobridge.core.relaystatus import ReplicaAnswer

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 2.0


def _get(url: str, timeout: float) -> ReplicaAnswer:
    try:
        response = httpx.get(f"{url.rstrip('/')}/v1/status", timeout=timeout)
        response.raise_for_status()
        document: Any = response.json()
    except (httpx.HTTPError, ValueError) as error:
        log.info("relay replica %s did not answer: %s", url, type(error).__name__)
        return ReplicaAnswer(url, None)
    return ReplicaAnswer(url, document if isinstance(document, dict) else None)


def fetch_status_documents(urls: Sequence[str], timeout: float = TIMEOUT_SECONDS) -> list[ReplicaAnswer]:
    """One answer per URL, in the order given (None document: no answer in time)."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="relay-status") as pool:
        return list(pool.map(lambda url: _get(url, timeout), urls))
