"""The shared secret between Argo CD and Backstage: how it is made and when an existing one is usable.

The value itself never leaves the edges that read and write Secrets; this module only produces it and
judges it, and its messages never quote it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

# Backstage's static external-access tokens must match ^\S+$ and be at least 8 characters; we make
# 48 random bytes (64 URL-safe characters, 384 bits), far past that floor.
TOKEN_BYTES = 48
MIN_TOKEN_LENGTH = 8


def generate_token() -> str:
    """A new random token, URL-safe so it survives headers, YAML and environment variables."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_problem(value: str) -> str | None:
    """Why Backstage would refuse this token as a static external-access token, or None if it is fine."""
    if len(value) < MIN_TOKEN_LENGTH:
        return f"it is shorter than the {MIN_TOKEN_LENGTH} characters Backstage requires"
    if any(character.isspace() for character in value):
        return "it contains whitespace, which Backstage's static tokens may not"
    if not all(" " < character < "\x7f" for character in value):
        # An Authorization header carries ASCII only: Argo CD and the probe could not send it at all.
        return "it contains a character other than printable ASCII, which an HTTP Authorization header cannot carry"
    return None


def services_using_key(key: str, config: Mapping[str, str], own_service: str) -> list[str]:
    """The other notification services of Argo CD's ConfigMap whose values read `$key` from its Secret.

    Such a key holds another service's credential (`$slack-token`): a bridge naming it would adopt that
    value and send it, as its bearer token, to the Backstage URL the bridge's author chose.
    """
    reference = re.compile(r"\$" + re.escape(key) + r"(?![\w-])")
    return sorted(
        name
        for name, value in config.items()
        if name.startswith("service.") and name != own_service and reference.search(value or "")
    )
