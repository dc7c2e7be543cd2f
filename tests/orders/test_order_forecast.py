"""Order page timeline on the ingested demo workbook: an open order's forecast bars, a stalled order's days, a
finished order's prediction against its actual lead time, the errors' culprit phase by name."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.db.models import Q

from orders.models import ManufacturingOrder, OrderPhase, RouteStep
from tests.orders.test_views import _states_at, sclient, supervisor  # noqa: F401  (fixtures)

DAY = 86400.0


def _svg(html: str) -> str:
    return re.search(r'<svg class="gantt".*?</svg>', html, re.S).group(0)


def _remaining_steps(order_id: int, product_id: int, as_of) -> list[int]:
    """The standard-route steps neither executed by as_of nor skipped (a step before the furthest one reached)."""
    steps = list(RouteStep.objects.filter(product_id=product_id).order_by("sequence", "phase_id")
                 .values_list("phase_id", "sequence"))
    touched = set(OrderPhase.objects.filter(order_id=order_id).filter(Q(started_at__lte=as_of) | Q(ended_at__lte=as_of))
                  .values_list("phase_id", flat=True))
    reached = max((seq for pid, seq in steps if pid in touched), default=None)
    skipped = {pid for pid, seq in steps if pid not in touched and reached is not None and seq < reached}
    out: list[int] = []
    for pid, _seq in steps:
        if pid not in touched and pid not in skipped and pid not in out:
            out.append(pid)
    return out


def _in_progress_phase(order_id: int, as_of) -> list[int]:
    """The phase in progress at as_of (started by then, not ended by then; the latest started), as a 0/1-item list."""
    running = (OrderPhase.objects.filter(order_id=order_id, started_at__lte=as_of, phase_id__isnull=False)
               .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=as_of)).order_by("-started_at", "-id")
               .values_list("phase_id", flat=True))
    return list(running[:1])


def test_open_order_forecast_bars_end_at_predicted_finish(sclient, ingested):  # noqa: F811
    from mlops.selectors import predict_eta

    as_of = ingested["as_of"]
    states = _states_at(as_of)
    candidates = sorted(oid for oid, s in states.items() if s["state"] not in ("finished", "stalled", "abandoned")
                        and s["product_id"] is not None)
    checked = 0
    for oid in candidates:
        remaining = _remaining_steps(oid, states[oid]["product_id"], as_of)
        if len(remaining) < 2:
            continue
        eta = predict_eta(order_id=oid, as_of=as_of)
        assert eta and eta.get("predicted_finish"), oid
        html = sclient.get(f"/orders/{oid}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
        svg = _svg(html)
        bars = re.findall(r'<rect class="forecast" data-phase="(\d+)" data-end="([^"]+)" x="([\d.]+)"[^>]*width="([\d.]+)"',
                          svg)
        # the phase in progress (what is left of it), then one bar per remaining standard-route step, in route order
        assert [int(b[0]) for b in bars] == _in_progress_phase(oid, as_of) + remaining, oid
        # the last one ends at the predicted finish, which is marked
        finish = datetime.fromisoformat(eta["predicted_finish"])
        assert abs((datetime.fromisoformat(bars[-1][1]) - finish).total_seconds()) < 1.0
        finish_x = float(re.search(r'<line class="eta-finish" x1="([\d.]+)"', svg).group(1))
        assert abs(float(bars[-1][2]) + float(bars[-1][3]) - finish_x) < 0.3
        # the bars are consecutive, from as_of to the predicted finish
        ends = [datetime.fromisoformat(b[1]) for b in bars]
        assert ends == sorted(ends) and ends[0] > as_of
        # the axis runs to the interval's upper end (else the predicted finish), not to the wall clock
        last_tick = max(float(x) for x in re.findall(r'<text x="([\d.]+)" y="14"', svg))
        band = re.search(r'<rect class="eta-interval" x="([\d.]+)"[^>]*width="([\d.]+)"', svg)
        if eta.get("interval_80"):
            assert band and float(band.group(1)) + float(band.group(2)) == pytest.approx(last_tick, abs=0.3)
        else:
            assert finish_x == pytest.approx(last_tick, abs=0.3)
        assert 'id="forecast-note"' in html and "median durations" in html
        checked += 1
        if checked == 3:
            break
    assert checked, "no open order with two remaining standard-route steps in the demo data"


def test_stalled_order_says_stalled_without_forecast(sclient, ingested):  # noqa: F811
    # the demo's as-of has no stalled order: look just before the end of the longest pauses between two events
    events: dict[int, list] = {}
    for o in ManufacturingOrder.objects.filter(created_at__isnull=False).values("id", "created_at"):
        events[o["id"]] = [o["created_at"]]
    for p in OrderPhase.objects.filter(order_id__in=list(events)).values("order_id", "started_at", "ended_at"):
        events[p["order_id"]] += [t for t in (p["started_at"], p["ended_at"]) if t is not None]
    pauses = []
    for oid, times in events.items():
        times.sort()
        pauses += [(b - a, oid, b) for a, b in zip(times, times[1:], strict=False)]
    stalled = []
    for _gap, _oid, resumed in sorted(pauses, reverse=True)[:8]:
        as_of = resumed - timedelta(minutes=1)
        stalled = sorted((oid, s) for oid, s in _states_at(as_of).items() if s["state"] == "stalled")
        if stalled:
            break
    assert stalled, "the demo data has stalled orders"
    query = urlencode({"as_of": as_of.isoformat()})
    for oid, s in stalled[:3]:
        html = sclient.get(f"/orders/{oid}/?{query}", HTTP_ACCEPT_LANGUAGE="en").content.decode()
        days = int((as_of - s["last_event_at"]).total_seconds() // DAY)
        note = re.search(r'<p id="stalled-note"[^>]*>(.*?)</p>', html, re.S).group(1)
        assert f"Stalled for {days} day" in note, (oid, note)
        assert 'class="forecast"' not in html and 'class="eta-finish"' not in html
    pt = sclient.get(f"/orders/{stalled[0][0]}/?{query}", HTTP_ACCEPT_LANGUAGE="pt-pt").content.decode()
    assert 'id="stalled-note"' in pt


def test_finished_order_prediction_against_actual(sclient, ingested):  # noqa: F811
    from mlops.choices import ModelName
    from mlops.models import Prediction
    from mlops.selectors import predict

    as_of = ingested["as_of"]
    done = (ManufacturingOrder.objects.filter(finished_at__lte=as_of, created_at__isnull=False)
            .order_by("-finished_at").values("id", "created_at", "finished_at").first())
    html = sclient.get(f"/orders/{done['id']}/").content.decode()
    block = re.search(r'<p id="prediction-vs-actual">(.*?)</p>', html, re.S).group(1)
    actual = (done["finished_at"] - done["created_at"]).total_seconds() / DAY
    stored = Prediction.objects.filter(order_id=done["id"], name=ModelName.LEAD_TIME, as_of__lte=as_of).order_by("as_of").first()
    predicted = stored.value if stored else predict(name=ModelName.LEAD_TIME, order_id=done["id"])["lead_time_days"]
    assert f"{predicted:.1f}".replace(".", ",") in block and f"{actual:.1f}".replace(".", ",") in block, block
    assert 'class="forecast"' not in html
    # the axis runs to the data's as-of date: the as-of line sits at the right end of the axis
    svg = _svg(html)
    last_tick = max(float(x) for x in re.findall(r'<text x="([\d.]+)" y="14"', svg))
    assert float(re.search(r'<line class="as-of" x1="([\d.]+)"', svg).group(1)) == pytest.approx(last_tick, abs=0.2)


def test_quality_errors_name_their_culprit_phase(sclient, ingested):  # noqa: F811
    from quality.models import QualityError

    error = (QualityError.objects.filter(culprit_order_phase_id__in=OrderPhase.objects.filter(
                 phase_id__isnull=False, order_id__in=ManufacturingOrder.objects.values("id")).values("id"))
             .values("order_id", "culprit_order_phase_id").first())
    assert error, "the demo data has errors with a culprit phase"
    from orders.models import Phase

    phase = OrderPhase.objects.get(id=error["culprit_order_phase_id"])
    assert phase.order_id == error["order_id"]
    name = Phase.objects.get(id=phase.phase_id).name
    html = sclient.get(f"/orders/{error['order_id']}/").content.decode()
    cells = re.findall(r'<td class="culprit">(.*?)</td>', html, re.S)
    assert name in cells
