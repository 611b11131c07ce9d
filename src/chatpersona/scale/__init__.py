"""chatpersona.scale."""

__all__: list[str] = []
