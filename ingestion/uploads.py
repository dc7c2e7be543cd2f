"""Uploaded and inbox workbooks: size and type checks, stored outside the web root under a generated name."""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings

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
