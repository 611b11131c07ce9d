"""Command-line face of chatpersona."""
