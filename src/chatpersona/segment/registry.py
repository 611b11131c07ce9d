"""ModelRegistry: every published segment model version, and which one is active.

Layout under ``root``::

    versions/<version>/   a copy of the model directory (model.json, arrays.npz, reports)
    ACTIVE                {"version": "..."}; replaced atomically (temp file + os.replace)

Publishing copies into a temporary directory first and renames it into place, so a reader
never sees half a model; activation is one atomic file replacement.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from chatpersona.exceptions import ConflictError, NotFoundError
from chatpersona.segment.model import SegmentModel

__all__ = ["ModelRegistry"]


class ModelRegistry:
    """Versions of segment models on a filesystem root.

    Examples
    --------
    >>> import tempfile
    >>> reg = ModelRegistry(tempfile.mkdtemp())
    >>> reg.versions(), reg.active()
    ([], None)
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._versions = self.root / "versions"
        self._active = self.root / "ACTIVE"

    def publish(self, model_dir: str | Path, *, activate: bool = False) -> str:
        """Copy a model directory in as a new version; returns the version string."""
        model = SegmentModel.load(model_dir)
        version = model.version
        target = self._versions / version
        if target.exists():
            raise ConflictError(f"model version {version} is already published", version=version)
        self._versions.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".publish-", dir=self._versions))
        try:
            shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if activate:
            self.activate(version)
        return version

    def versions(self) -> list[str]:
        """Published versions, oldest first."""
        if not self._versions.is_dir():
            return []
        return sorted(
            p.name for p in self._versions.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def activate(self, version: str) -> None:
        """Make ``version`` the active one (atomic: readers see the old or the new one)."""
        if not (self._versions / version / "model.json").is_file():
            raise NotFoundError(f"no published model version {version!r}", version=version)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".active-", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"version": version}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._active)

    def active_version(self) -> str | None:
        """The active version, or ``None``."""
        if not self._active.is_file():
            return None
        return str(json.loads(self._active.read_text(encoding="utf-8"))["version"])

    def path(self, version: str) -> Path:
        """Directory of a published version."""
        p = self._versions / version
        if not p.is_dir():
            raise NotFoundError(f"no published model version {version!r}", version=version)
        return p

    def load(self, version: str) -> SegmentModel:
        """Load a published version."""
        return SegmentModel.load(self.path(version))

    def active(self) -> SegmentModel | None:
        """The active model, or ``None`` when nothing is active."""
        v = self.active_version()
        return None if v is None else self.load(v)
