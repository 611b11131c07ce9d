"""chatpersona.stream."""

__all__: list[str] = []
