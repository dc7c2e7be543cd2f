"""What-if page on the ingested demo workbook: role check, run with deltas, polling answer, reopen and compare."""

from __future__ import annotations

import re

from django.contrib.auth.models import User

from whatif.models import WhatIfRun

HX = {"HTTP_HX_REQUEST": "true"}
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}  # the English msgids (pt-PT is the default language)


def _scenario(phase_id: int) -> dict:
    return {"priority_rule": "SPT", "horizon_days": "28", "cap-0-phase": str(phase_id), "cap-0-servers": "3",
            "dur-0-family": "K1", "dur-0-multiplier": "0.8"}


def test_form_offers_real_phases_and_families(supervisor_client, ingested, pinned_queries):
    from orders.models import Phase

    with pinned_queries("whatif.test_views.test_form_offers_real_phases_and_families"):
        html = supervisor_client.get("/whatif/").content.decode()
    assert html.count("<h1") == 1
    options = set(re.findall(r'<select id="cap-0-phase".*?</select>', html, re.S)[0].split('value="')[1:])
    assert {o.split('"')[0] for o in options} - {""} == {str(i) for i in Phase.objects.values_list("id", flat=True)}
    for tag in re.findall(r'<(?:input|select)\b[^>]*>', html):
        if 'type="hidden"' in tag:
            continue
        field = re.search(r'id="([^"]+)"', tag)
        assert field and (f'for="{field.group(1)}"' in html or "aria-label=" in tag), tag


def test_priority_rules_are_words_in_portuguese(supervisor_client, ingested):
    html = supervisor_client.get("/whatif/", HTTP_ACCEPT_LANGUAGE="pt-pt").content.decode()
    rules = re.findall(r'<select id="id_priority_rule".*?</select>', html, re.S)[0]
    assert "Primeiro a chegar, primeiro a sair" in rules and "First in" not in rules
    assert ">FIFO" not in rules  # the code stays in the value, not in the text


def test_viewer_cannot_run(client, ingested, db):
    client.force_login(User.objects.create_user("viewer", password="pw-viewer-123"))
    assert client.post("/whatif/run/", _scenario(1)).status_code == 403
    assert "disabled" in client.get("/whatif/").content.decode()


def test_run_shows_deltas_then_reopen_poll_and_compare(supervisor_client, ingested):
    from orders.models import Phase

    phase_id = Phase.objects.order_by("sequence", "id").values_list("id", flat=True).first()
    html = supervisor_client.post("/whatif/run/", _scenario(phase_id), **HX).content.decode()
    run = WhatIfRun.objects.get()
    assert run.status == "succeeded" and run.inputs["priority_rule"] == "SPT"
    assert run.inputs["capacity_overrides"] == [{"phase_id": phase_id, "servers": 3}]
    out = run.outputs
    shown = dict(re.findall(r'<tr data-kpi="(\w+)">.*?<td class="num delta[^"]*">([^<]*)</td>', html, re.S))
    for key in ("orders_finished", "wip_at_horizon_end"):
        delta = out["scenario"][key] - out["baseline"][key]
        assert shown[key].lstrip("+") == ("—" if delta is None else str(delta))
    assert 'id="chart-run"' in html and "hx-trigger" not in html  # done: no polling
    # polling a finished run answers 286 so htmx stops
    assert supervisor_client.get(f"/whatif/{run.pk}/?poll=1", **HX).status_code == 286
    assert f"#{run.pk}" in supervisor_client.get("/whatif/").content.decode()
    reopened = supervisor_client.get(f"/whatif/{run.pk}/").content.decode()
    assert 'id="delta-table"' in reopened and reopened.count("<h1") == 1
    second = supervisor_client.post("/whatif/run/", {**_scenario(phase_id), "priority_rule": "FIFO"}, **HX)
    assert second.status_code == 200
    ids = list(WhatIfRun.objects.order_by("id").values_list("id", flat=True))
    compare = supervisor_client.get(f"/whatif/compare/?run={ids[0]}&run={ids[1]}").content.decode()
    assert compare.count('href="/whatif/') >= 2 and "compare-table" in compare


def test_invalid_scenario_is_explained(supervisor_client, ingested):
    response = supervisor_client.post("/whatif/run/", _scenario(987654), **HX)
    assert response.status_code == 200 and "987654" in response.content.decode()
    assert not WhatIfRun.objects.exists()


def test_page_shows_current_stations_and_calendar_and_a_changed_number_is_an_override(supervisor_client, ingested):
    from prodplan.asof import data_as_of
    from whatif.selectors import capacity_by_phase

    html = supervisor_client.get("/whatif/").content.decode()
    capacity = capacity_by_phase(as_of=data_as_of())
    shown = dict(re.findall(r'<tr data-phase="(\d+)">\s*<th scope="row">[^<]*</th><td class="num">(\d+)</td>', html))
    assert shown == {str(p): str(c["servers"]) for p, c in capacity.items()}
    assert html.count('stepDown()">−1<') == html.count('stepUp()">+1<') == len(capacity)
    assert 'id="working-calendar"' in html
    phase_id, current = next(iter(shown.items()))
    post = {"priority_rule": "FIFO", "horizon_days": "14", f"stations-{phase_id}": str(int(current) + 1),
            f"stations-{phase_id}-current": current}
    for other, n in list(shown.items())[1:3]:  # unchanged numbers are not overrides
        post.update({f"stations-{other}": n, f"stations-{other}-current": n})
    assert supervisor_client.post("/whatif/run/", post, **HX).status_code == 200
    run = WhatIfRun.objects.get()
    assert run.inputs["capacity_overrides"] == [{"phase_id": int(phase_id), "servers": int(current) + 1}]
    assert run.outputs["scenario"]["servers"].get(phase_id, int(current) + 1) == int(current) + 1


def test_a_finished_run_reloads_the_past_runs_which_list_it_by_what_it_changed(supervisor_client, ingested):
    """The run's answer triggers the past-runs reload; the list and the result name the phase, not its id, with
    the stations before and after (from the run's outputs) and the rule."""
    from django.utils.formats import number_format

    from orders.choices import ProductFamily
    from orders.models import Phase
    from whatif.choices import PriorityRule

    phase = Phase.objects.order_by("sequence", "id").first()
    response = supervisor_client.post("/whatif/run/", _scenario(phase.pk), **HX, **EN)
    assert response.status_code == 200 and response["HX-Trigger"] == "whatif-run-done"
    run = WhatIfRun.objects.get()
    before = run.outputs["baseline"]["servers"][str(phase.pk)]
    after = run.outputs["scenario"]["servers"][str(phase.pk)]
    assert after == 3
    expected = (f"{phase.name}: {number_format(before)} → 3 stations; {ProductFamily('K1').label}: durations × 0.8; "
                f"rule: {PriorityRule.SPT.label}")
    result = response.content.decode()
    assert expected in result and f"phase {phase.pk}:" not in result
    runs = supervisor_client.get("/whatif/runs/", **HX, **EN)
    assert runs.status_code == 200
    html = runs.content.decode()
    assert f'data-run="{run.pk}"' in html and expected in html
    assert 'hx-trigger="whatif-run-done from:body"' in html


def test_result_and_comparison_list_the_orders_whose_finish_moves_most(supervisor_client, ingested):
    from orders.models import Phase

    phases = list(Phase.objects.order_by("sequence", "id").values_list("pk", "name")[:2])
    supervisor_client.post("/whatif/run/", _scenario(phases[0][0]), **HX, **EN)
    supervisor_client.post("/whatif/run/", {"priority_rule": "FIFO", "horizon_days": "28",
                                            "cap-0-phase": str(phases[1][0]), "cap-0-multiplier": "2"}, **HX, **EN)
    first, second = WhatIfRun.objects.order_by("id")
    assert first.status == second.status == "succeeded"
    html = supervisor_client.get(f"/whatif/compare/?run={first.pk}&run={second.pk}", **EN).content.decode()
    labels = re.findall(r'<span class="small scenario-label">([^<]*)</span>', html)
    assert len(labels) == 2 and labels[0].startswith(phases[0][1] + ":") and labels[1].startswith(phases[1][1] + ":")
    assert labels[0].endswith(": durations × 0.8; rule: Shortest processing time first")
    assert labels[1] == f"{phases[1][1]}: {second.outputs['baseline']['servers'][str(phases[1][0])]} → "\
        f"{second.outputs['scenario']['servers'][str(phases[1][0])]} stations"  # FIFO is the baseline's rule  # FIFO is the baseline's rule: no change to name
    for run in (first, second):
        delta = run.outputs["deltas"]["orders_finished"]
        assert run.outputs["scenario"]["orders_finished"] - run.outputs["baseline"]["orders_finished"] == delta
    row = re.search(r'<tr data-kpi="orders_finished">(.*?)</tr>', html, re.S).group(1)
    shown = re.findall(r'<span class="delta[^"]*">([^<]*)</span>', row)
    assert [s.lstrip("+") for s in shown] == [str(r.outputs["deltas"]["orders_finished"]) for r in (first, second)]
    moving = [m for m in first.outputs["top_affected_orders"] if m["order_id"]][:1]
    if moving:  # the order that moves most links to its page, in the comparison and in the result
        assert f'href="/orders/{moving[0]["order_id"]}/"' in html
        result = supervisor_client.get(f"/whatif/{first.pk}/", **HX, **EN).content.decode()
        assert 'id="moving-orders"' in result and f'href="/orders/{moving[0]["order_id"]}/"' in result
    assert first.outputs["orders_affected"] > 0  # three stations on the first phase move some finish
