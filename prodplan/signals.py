"""Kernel signals: data_changed, which ingestion sends when a run's data is merged and each app subscribes to."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by ingestion (sender: the IngestionRun model) inside the run's transaction, after the merge and before the
# data version moves, with run_id, as_of (the snapshot's), sheets (the sheets re-read this run: what changed) and
# warm_cache (False when no reader could use a post-commit warm-up; see ingestion.services.cache_warmups_useful).
# Receivers write their aggregate tables in that transaction, so they commit or roll back with the run's data, and
# queue their cache warm-ups with transaction.on_commit, so the warm-ups read committed data at the new version.
# Each app connects its receivers in AppConfig.ready() (<app>/receivers.py). Sent with send(), not send_robust():
# a receiver that fails fails the run, which then changes nothing.
data_changed = Signal()
