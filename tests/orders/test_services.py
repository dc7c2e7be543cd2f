"""Writes of the orders domain: a steward's abandonment mark, and the stored bottleneck backtest."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from orders import selectors, services
from orders.models import BottleneckBacktest, ManufacturingOrder, OrderAbandonment
from tests.orders.builders import AS_OF

pytestmark = pytest.mark.django_db


def _open_ids(as_of=AS_OF) -> list[int]:
    return [r["order_id"] for r in selectors.open_orders_at(as_of=as_of)]


def test_abandoned_order_leaves_planning_but_stays_in_the_data(factory, django_capture_on_commit_callbacks):
    active = selectors.active_orders_at(as_of=AS_OF)
    target = active[0]["order_id"]
    with django_capture_on_commit_callbacks(execute=True):  # the cache learns the new data version on commit
        services.order_abandon(order_id=target, marked_by="steward", reason="customer cancelled")
    assert ManufacturingOrder.objects.filter(id=target).exists()
    state = selectors.order_states(as_of=AS_OF, order_ids=[target])[target]
    assert state["state"] == "abandoned" and state["status"] == "ABANDONED"
    assert target not in {r["order_id"] for r in selectors.active_orders_at(as_of=AS_OF)}
    assert target not in {r["order_id"] for r in selectors.risk_queue(as_of=AS_OF, limit=1000)["orders"]}
    assert selectors.schedule_current(as_of=AS_OF)["abandoned"] == 1
    assert sum(p["wip"] for p in selectors.schedule_current(as_of=AS_OF)["phases"]) == len(active) - 1
    with django_capture_on_commit_callbacks(execute=True):
        assert services.order_unabandon(order_ids=[target]) == 1
    assert target in {r["order_id"] for r in selectors.active_orders_at(as_of=AS_OF)}


def test_only_open_orders_can_be_abandoned(factory):
    finished = ManufacturingOrder.objects.filter(finished_at__isnull=False).values_list("id", flat=True).first()
    with pytest.raises(services.OrderNotAbandonable, match="finished"):
        services.order_abandon(order_id=finished, marked_by="steward")
    with pytest.raises(services.OrderNotAbandonable, match="not in the data"):
        services.order_abandon(order_id=987654321, marked_by="steward")
    assert not OrderAbandonment.objects.exists()


def test_steward_marks_an_order_abandoned_in_admin(factory, client):
    from prodplan.roles import DATA_STEWARDS, ensure_role_groups

    ensure_role_groups()
    steward = User.objects.create_user("stew", password="pw-stew-123", is_staff=True)
    steward.groups.add(Group.objects.get(name=DATA_STEWARDS))
    client.force_login(steward)
    target = selectors.active_orders_at(as_of=AS_OF)[0]["order_id"]
    response = client.post("/admin/orders/orderabandonment/add/", {"order_id": target, "reason": "scrapped hull"})
    assert response.status_code == 302, response.content.decode()[:2000]
    mark = OrderAbandonment.objects.get(order_id=target)
    assert mark.marked_by == "stew" and mark.reason == "scrapped hull"
    assert selectors.order_states(as_of=AS_OF, order_ids=[target])[target]["state"] == "abandoned"
    finished = ManufacturingOrder.objects.filter(finished_at__isnull=False).values_list("id", flat=True).first()
    client.post("/admin/orders/orderabandonment/add/", {"order_id": finished, "reason": "x"})
    assert not OrderAbandonment.objects.filter(order_id=finished).exists()


def test_bottleneck_backtest_is_stored_and_shown_beside_the_ranking(factory, capsys):
    start = AS_OF - timedelta(days=7 * 7 + 28)
    call_command("bottleneck_backtest", "--start", start.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "--weeks", "8")
    stored = BottleneckBacktest.objects.get()
    assert stored.weeks == 8 and len(stored.weekly) == 8
    scored = [w for w in stored.weekly if w["hit"] is not None]
    assert stored.scored_weeks == len(scored) and stored.hits == sum(1 for w in scored if w["hit"])
    for week in scored:  # the truth is the phase with the most queue measured over the next 4 weeks
        end = datetime.fromisoformat(week["date"]) + timedelta(days=28)
        ranked = selectors.rank_bottlenecks(flow=selectors.measured_flow(snapshots=[end], days=28)[end],
                                            active=selectors.active_orders_at(as_of=end), as_of=end, days=28)
        assert week["actual"] == max(ranked, key=lambda r: (r["queue_score_hours"], -r["phase_id"]))["phase_id"]
    shown = selectors.bottlenecks(as_of=AS_OF)["backtest"]
    assert (shown["hits"], shown["scored_weeks"]) == (stored.hits, stored.scored_weeks)
    assert '"hits"' in capsys.readouterr().out


def test_bottleneck_backtest_rejects_bad_options(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--weeks"):
        call_command("bottleneck_backtest", "--weeks", "0", "--start", "2025-01-01")
    with pytest.raises(CommandError, match="2000-01-01"):
        call_command("bottleneck_backtest", "--start", "0001-01-01")
