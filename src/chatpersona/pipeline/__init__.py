"""chatpersona.pipeline."""

__all__: list[str] = []
