"""KPIs of the API against an independent pandas computation over the generated workbook's own rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.django_db


def _orders_frame(ingested) -> pd.DataFrame:
    """OrdensFabrico read with pandas (not our reader), planted rejects dropped by their Excel row numbers."""
    frame = pd.read_excel(ingested["path"], sheet_name="OrdensFabrico", engine="openpyxl", dtype=object)
    frame["excel_row"] = frame.index + 2
    planted = {row for rows in ingested["manifest"]["sheets"]["OrdensFabrico"]["planted_rejects"].values() for row in rows}
    frame = frame[~frame["excel_row"].isin(planted)].copy()

    def when(value):
        if value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() in ("", "NULL"):
            return pd.NaT
        if isinstance(value, str):
            iso = pd.to_datetime(value, format="%Y-%m-%d %H:%M:%S", errors="coerce")
            return iso if not pd.isna(iso) else pd.to_datetime(value, dayfirst=True, errors="coerce")
        return pd.Timestamp(value)

    frame["created"] = frame["Of_DataCriacao"].map(when).dt.tz_localize("Europe/Lisbon", ambiguous="NaT", nonexistent="NaT")
    frame["finished"] = frame["Of_DataAcabamento"].map(when).dt.tz_localize("Europe/Lisbon", ambiguous="NaT", nonexistent="NaT")
    return frame


def test_lead_time_and_throughput_match_pandas(ingested, api_client):
    frame = _orders_frame(ingested)
    date_from, date_to = "2023-01-01", "2025-12-15"
    start = pd.Timestamp(date_from).tz_localize("Europe/Lisbon")
    end = (pd.Timestamp(date_to) + pd.Timedelta(days=1)).tz_localize("Europe/Lisbon")
    done = frame[(frame["finished"] >= start) & (frame["finished"] < end)]
    lead = ((done["finished"] - done["created"]).dt.total_seconds() / 86400).dropna().to_numpy()
    assert len(lead) > 20, "the generated workbook should finish orders in the window"

    body = api_client.get("/api/kpis/overview", {"date_from": date_from, "date_to": date_to}).json()
    assert body["finished_orders"] == len(done)
    values = body["lead_time_days"]["value"]
    assert values["p50"] == pytest.approx(np.percentile(lead, 50), abs=1e-3)
    assert values["p90"] == pytest.approx(np.percentile(lead, 90), abs=1e-3)
    assert values["mean"] == pytest.approx(lead.mean(), abs=1e-3)
    weeks = (end - start).total_seconds() / (7 * 86400)
    assert body["throughput_per_week"]["value"] == pytest.approx(len(done) / weeks, abs=1e-3)
    assert body["lead_time_days"]["basis"] == "observed"


def test_open_orders_match_pandas(ingested, api_client):
    frame = _orders_frame(ingested)
    as_of = pd.Timestamp(ingested["as_of"]).tz_convert("Europe/Lisbon")
    open_orders = frame[frame["finished"].isna() & (frame["created"] <= as_of)]
    body = api_client.get("/api/kpis/overview").json()
    # WIP is the active orders: the open ones less the stalled (no order is marked abandoned in a fresh ingestion)
    assert body["wip"]["value"]["count"] + body["wip"]["stalled_orders_excluded"] == len(open_orders)
    assert body["wip"]["value"]["count"] > 0
