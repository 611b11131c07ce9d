"""chatpersona.segment."""

__all__: list[str] = []
