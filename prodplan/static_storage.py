"""Static files storage: hashed, compressed names once `collectstatic` has run; the source names before it."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class CollectedOrSourceStaticStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's manifest storage, except that without a collected manifest (tests, a first run from a
    clone) a URL is the file's own name, which WhiteNoise serves from the app folders (its finders)."""

    manifest_strict = False

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:
            return name
        return super().stored_name(name)
