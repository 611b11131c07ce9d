"""chatpersona.clean."""

__all__: list[str] = []
