"""Supervisor what-if flow in a real browser (#19): +1 station on the measured bottleneck, the result labelled by
that change, then the comparison with a second scenario showing both labels and their deltas."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _run_and_wait(web):
    page = web.page
    page.click("#run-button")
    page.wait_for_selector("#delta-table", timeout=120000)


def test_plus_one_station_on_the_bottleneck_then_compare(web, loaded):
    from whatif.models import WhatIfRun

    web.login()
    page = web.page
    # the measured bottleneck: the overview's first bottleneck row links to its phase's orders
    href = page.locator("#bottleneck-table tbody tr a.bottleneck-link").first.get_attribute("href")
    phase_id = int(re.search(r"current_phase=(\d+)", href).group(1))
    phase_name = page.locator("#bottleneck-table tbody tr a.bottleneck-link").first.inner_text().strip()

    web.goto("/whatif/")
    row = page.locator(f'#stations-table tr[data-phase="{phase_id}"]')
    assert row.count() == 1, f"the bottleneck phase {phase_id} has no stations row"
    assert row.locator("th").inner_text().strip() == phase_name
    current = int(page.locator(f"#stations-{phase_id}").input_value())
    page.fill("#id_horizon_days", "28")
    row.locator("button", has_text="+1").click()
    assert int(page.locator(f"#stations-{phase_id}").input_value()) == current + 1
    web.shot("stations-plus-one")
    _run_and_wait(web)
    first = WhatIfRun.objects.order_by("-id").first()
    assert first.status == "succeeded"
    assert {(c["phase_id"], c.get("servers")) for c in first.inputs["capacity_overrides"]} == {(phase_id, current + 1)}
    expected = f"{phase_name}: {current} → {current + 1} postos"  # pt-PT, the browser's language
    assert expected in page.locator("#whatif-result .scenario-label").inner_text()
    web.shot("result-plus-one")

    # a second scenario: the stations as they are, the SPT rule
    web.goto("/whatif/")
    assert int(page.locator(f"#stations-{phase_id}").input_value()) == current  # the form starts from the measure
    page.fill("#id_horizon_days", "28")
    page.select_option("#id_priority_rule", "SPT")
    _run_and_wait(web)
    second = WhatIfRun.objects.order_by("-id").first()
    assert second.pk != first.pk and second.status == "succeeded"
    assert not second.inputs.get("capacity_overrides")
    second_label = page.locator("#whatif-result .scenario-label").inner_text()
    assert second_label.startswith("regra: ")

    # both in the past runs, labelled; compare them
    web.goto("/whatif/")
    assert expected in page.locator(f'#runs-table tr[data-run="{first.pk}"] .scenario-label').inner_text()
    page.check(f"#cmp-{first.pk}")
    page.check(f"#cmp-{second.pk}")
    page.click("#past-runs button[type=submit]")
    page.wait_for_url(re.compile(r"/whatif/compare/\?run=\d+&run=\d+"))
    page.wait_for_selector("#compare-table")
    labels = page.locator("#compare-table thead .scenario-label").all_inner_texts()
    assert len(labels) == 2
    assert expected in labels[0]  # columns in run order
    assert labels[1].startswith("regra: ") and "postos" not in labels[1]
    for kpi in ("orders_finished", "throughput_total"):
        cells = page.locator(f'#compare-table tr[data-kpi="{kpi}"] td .delta')
        if not cells.count():
            continue
        for i, run in enumerate((first, second)):
            delta = (run.outputs.get("deltas") or {}).get(kpi)
            shown = cells.nth(i).inner_text().strip()
            if delta is None:
                assert shown == "—"
            else:
                assert float(shown.lstrip("+").replace(",", ".")) == pytest.approx(delta, abs=0.01)
    shown_kpis = page.locator("#compare-table tbody tr[data-kpi] td .delta").count()
    assert shown_kpis >= 2
    web.check_accessibility()
    web.shot("compare")
