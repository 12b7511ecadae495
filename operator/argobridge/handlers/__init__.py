"""kopf wiring: importing this package registers every handler (`kopf run -m argobridge.handlers`)."""

from argobridge.handlers import bridge, configobjects, startup

__all__ = ["bridge", "configobjects", "startup"]
