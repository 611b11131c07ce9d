"""chatpersona: data-driven personalization for customer-support chatbots.

The flow is clean -> features -> segment -> profiles -> decide, with a stream worker
that applies the same fitted artifacts to live events one at a time.
"""

from chatpersona.exceptions import ChatpersonaError

__version__ = "0.1.0"

__all__ = ["ChatpersonaError", "__version__"]
