"""chatpersona.api: the REST face (FastAPI). Build it with :func:`create_app`."""

from chatpersona.api.app import create_app
from chatpersona.api.deps import Principal, require_scope

__all__ = ["Principal", "create_app", "require_scope"]
