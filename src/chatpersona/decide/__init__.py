"""chatpersona.decide."""

__all__: list[str] = []
