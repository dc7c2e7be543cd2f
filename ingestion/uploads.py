"""Uploaded and inbox workbooks: size and type checks, stored outside the web root under a generated name, pruned
after UPLOAD_RETENTION_HOURS."""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path

from django.conf import settings

from ingestion.choices import RunStatus
from ingestion.models import IngestionRun

XLSX_MAGIC = b"PK\x03\x04"


class UploadRejected(Exception):
    """The upload is not something we will try to ingest; the message says why."""


def store_upload(uploaded) -> Path:
    """Save an uploaded workbook to UPLOAD_DIR after checking size, extension and zip signature."""
    name = Path(uploaded.name or "workbook.xlsx").name
    if not name.lower().endswith((".xlsx", ".xlsm")):
        raise UploadRejected(f"{name!r} is not an .xlsx workbook")
    if uploaded.size > settings.MAX_UPLOAD_BYTES:
        raise UploadRejected(f"{name!r} is {uploaded.size / 1024**2:.0f} MB; the limit is {settings.MAX_UPLOAD_BYTES / 1024**2:.0f} MB")
    head = uploaded.read(4)
    uploaded.seek(0)
    if head != XLSX_MAGIC:
        raise UploadRejected(f"{name!r} is not an Excel workbook (it does not start with the xlsx zip signature)")
    settings.UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    target = settings.UPLOAD_DIR / f"{uuid.uuid4().hex}.xlsx"
    with open(target, "wb") as handle:
        for chunk in uploaded.chunks():
            handle.write(chunk)
    target.chmod(0o600)
    return target


def inbox_path(name: str) -> Path:
    """A workbook named inside the configured inbox folder (no path traversal)."""
    inbox = Path(settings.INBOX_DIR).resolve()
    try:
        candidate = (inbox / name).resolve()
        found = inbox in candidate.parents and candidate.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        found = False
    if not found:
        raise UploadRejected(f"{name!r} is not a file in the inbox folder")
    return candidate


def upload_discard(path: Path) -> None:
    """Delete a stored upload that no run will read (the request was refused after the file was saved)."""
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()


def uploads_prune(*, now: float | None = None) -> dict:
    """Delete stored uploads older than UPLOAD_RETENTION_HOURS, except those of a pending or running run.

    A run needs its file until it has finished (and its profile has been read from it); after that the data is
    in the database and the file is kept only for the retention window (a re-check, a steward's question)."""
    folder = Path(settings.UPLOAD_DIR)
    if not folder.is_dir():
        return {"deleted": 0, "kept": 0, "bytes_freed": 0}
    cutoff = (time.time() if now is None else now) - settings.UPLOAD_RETENTION_HOURS * 3600
    in_use = {Path(p).name for p in IngestionRun.objects.filter(
        status__in=[RunStatus.PENDING, RunStatus.RUNNING]).values_list("file_path", flat=True)}
    deleted = kept = freed = 0
    for path in folder.glob("*.xlsx"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if stat.st_mtime >= cutoff or path.name in in_use:
            kept += 1
            continue
        upload_discard(path)
        deleted += 1
        freed += stat.st_size
    return {"deleted": deleted, "kept": kept, "bytes_freed": freed}
