"""kopf wiring: importing this package registers every handler (`kopf run -m argobridge.handlers`)."""

from argobridge.handlers import applications, bridge, configobjects, startup

__all__ = ["applications", "bridge", "configobjects", "startup"]
