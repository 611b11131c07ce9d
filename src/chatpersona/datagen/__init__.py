"""chatpersona.datagen."""

__all__: list[str] = []
