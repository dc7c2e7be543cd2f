"""Bad what-if input (issue 16, item 6): a 400 naming the field, as text, in the API and on the page; no run made or reused."""

from __future__ import annotations

import json

import pytest

from tests.whatif.factory import AS_OF, build
from whatif.models import WhatIfRun

pytestmark = pytest.mark.django_db
URL = "/api/whatif/simulate"
PAGE = "/whatif/run/"
HX = {"HTTP_HX_REQUEST": "true"}
LANGUAGES = ("en", "pt-pt")


def scenario(**extra) -> dict:
    return {"as_of": AS_OF.isoformat(), "horizon_days": 14, "seed": 3, **extra}


def cap(**item) -> dict:
    return {"capacity_overrides": [{"phase_id": 2, **item}]}


def coef(**item) -> dict:
    return {"coef_overrides": [{"phase_id": 3, **item}]}


# (body changes, the field the 400 must name, a piece of the rejected value the message repeats or None)
API_CASES = [
    pytest.param(cap(servers=2, multiplier=1.5), "capacity_overrides[0]", None, id="servers-and-multiplier"),
    pytest.param(cap(), "capacity_overrides[0]", None, id="neither-servers-nor-multiplier"),
    pytest.param({"capacity_overrides": [{"phase_id": 77, "servers": 2}]}, "capacity_overrides[0].phase_id", "77",
                 id="unknown-phase"),
    pytest.param(coef(phase_id=88, multiplier=1.2), "coef_overrides[0].phase_id", "88", id="unknown-phase-duration"),
    pytest.param(coef(product_id=4242, multiplier=1.2), "coef_overrides[0].product_id", "4242", id="unknown-product"),
    pytest.param({"capacity_overrides": [{"phase_id": 2**64, "servers": 2}]}, "capacity_overrides[0].phase_id", None,
                 id="phase-id-past-bigint"),
    pytest.param({"capacity_overrides": [{"phase_id": 2, "servers": 2}, {"phase_id": 2, "multiplier": 2}]},
                 "capacity_overrides[1].phase_id", None, id="phase-twice"),
    pytest.param({"seed": 2**64}, "seed", "18446744073709551616", id="seed-2**64"),
    pytest.param({"seed": 10**300}, "seed", "10^", id="seed-300-digits"),
    pytest.param({"seed": -1}, "seed", "-1", id="seed-negative"),
    pytest.param({"seed": 1.5}, "seed", "1.5", id="seed-fraction"),
    pytest.param({"horizon_days": 10**9}, "horizon_days", "1000000000", id="horizon-10**9"),
    pytest.param({"horizon_days": 0}, "horizon_days", None, id="horizon-zero"),
    pytest.param({"horizon_days": -7}, "horizon_days", "-7", id="horizon-negative"),
    pytest.param({"horizon_days": "two weeks"}, "horizon_days", "two weeks", id="horizon-text"),
    pytest.param({"arrival_weeks": 0}, "arrival_weeks", None, id="arrival-weeks-zero"),
    pytest.param({"arrival_weeks": 10**9}, "arrival_weeks", None, id="arrival-weeks-huge"),
    pytest.param(cap(multiplier=1e308), "capacity_overrides[0].multiplier", "1e+308", id="multiplier-1e308"),
    pytest.param(cap(multiplier=0), "capacity_overrides[0].multiplier", None, id="multiplier-zero"),
    pytest.param(cap(multiplier=-0.5), "capacity_overrides[0].multiplier", "-0.5", id="multiplier-negative"),
    pytest.param(cap(multiplier="lots"), "capacity_overrides[0].multiplier", "lots", id="multiplier-text"),
    pytest.param(cap(servers=10**12), "capacity_overrides[0].servers", "1000000000000", id="servers-10**12"),
    pytest.param(cap(servers=0), "capacity_overrides[0].servers", None, id="servers-zero"),
    pytest.param(cap(servers=-1), "capacity_overrides[0].servers", "-1", id="servers-negative"),
    pytest.param(cap(servers=2.5), "capacity_overrides[0].servers", "2.5", id="servers-fraction"),
    pytest.param(cap(servers="many"), "capacity_overrides[0].servers", "many", id="servers-text"),
    pytest.param(cap(servers=True), "capacity_overrides[0].servers", "True", id="servers-boolean"),
    pytest.param(coef(multiplier=1e308), "coef_overrides[0].multiplier", "1e+308", id="duration-multiplier-1e308"),
    pytest.param(coef(multiplier=0), "coef_overrides[0].multiplier", None, id="duration-multiplier-zero"),
    pytest.param({"coef_overrides": [{"multiplier": 1.2}]}, "coef_overrides[0]", None, id="duration-no-target"),
    pytest.param(coef(family="K9", multiplier=1.2), "coef_overrides[0].family", "K9", id="unknown-family"),
    pytest.param({"capacity_overrides": [{"phase_id": [2], "servers": 2}]}, "capacity_overrides[0].phase_id", None,
                 id="phase-id-list"),
    pytest.param({"capacity_overrides": "2:3"}, "capacity_overrides", None, id="overrides-text"),
    pytest.param({"capacity_overrides": {"phase_id": 2, "servers": 3}}, "capacity_overrides", None,
                 id="overrides-object"),
    pytest.param({"capacity_overrides": [5]}, "capacity_overrides[0]", None, id="override-number"),
    pytest.param({"capacity_overrides": [{"phase_id": 2, "servers": 2}] * 101}, "capacity_overrides", None,
                 id="too-many-overrides"),
    pytest.param({"priority_rule": "RANDOM"}, "priority_rule", "RANDOM", id="priority-unknown"),
    pytest.param({"priority_rule": 5}, "priority_rule", None, id="priority-number"),
    pytest.param({"arrivals": "maybe"}, "arrivals", "maybe", id="arrivals-text"),
    pytest.param({"run_async": 7}, "run_async", None, id="run-async-number"),
    pytest.param({"seeed": 4}, "seeed", None, id="misspelt-field"),
    pytest.param(cap(servers=2, stations=3), "capacity_overrides[0].stations", None, id="misspelt-override-field"),
]


def _messages(body: dict) -> list[str]:
    return [m for messages in body.values() for m in messages]


@pytest.mark.parametrize(("change", "field", "echo"), API_CASES)
def test_api_bad_input_is_a_400_naming_the_field(keyed_client, change, field, echo):
    build()
    for language in LANGUAGES:
        response = keyed_client.post(URL, scenario(**change), format="json", HTTP_ACCEPT_LANGUAGE=language)
        assert response.status_code == 400, (language, response.content[:500])
        body = response.json()
        assert field in body, (language, body)
        assert all(isinstance(m, str) for m in _messages(body)), body
        assert any(field in m for m in body[field]), body  # the message itself names the field
        if echo is not None:
            assert any(echo in m for m in body[field]), body
        assert "ErrorDetail" not in response.content.decode()
    assert not WhatIfRun.objects.exists()


def test_api_lists_every_problem_at_once(keyed_client):
    build()
    body = scenario(seed=2**64, horizon_days=10**9, **cap(servers=10**12))
    response = keyed_client.post(URL, body, format="json", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert set(response.json()) == {"seed", "horizon_days", "capacity_overrides[0].servers"}


def test_api_number_too_long_to_parse_is_a_400(keyed_client):
    """Past 4300 digits Python's JSON parser refuses the body itself: still a 400, never a 500."""
    response = keyed_client.post(URL, '{"seed": ' + "9" * 5000 + "}", content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()
    assert not WhatIfRun.objects.exists()


def test_api_body_that_is_not_an_object_is_a_400(keyed_client):
    build()
    for raw in ("[1, 2]", '"FIFO"', "7"):
        response = keyed_client.post(URL, raw, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 400, (raw, response.content)
        assert "non_field_errors" in response.json() and "capacity_overrides" in json.dumps(response.json())
    assert not WhatIfRun.objects.exists()


def test_api_messages_follow_the_language(keyed_client, settings):
    """English when asked for; in pt-PT the message goes through gettext (its catalogue is the lead's, locale/)."""
    from django.utils import translation

    from whatif.validation import NUMBER_OUT_OF_RANGE

    build()
    english = keyed_client.post(URL, scenario(**cap(multiplier=1e308)), format="json", HTTP_ACCEPT_LANGUAGE="en")
    portuguese = keyed_client.post(URL, scenario(**cap(multiplier=1e308)), format="json", HTTP_ACCEPT_LANGUAGE="pt-pt")
    (en_message,) = english.json()["capacity_overrides[0].multiplier"]
    (pt_message,) = portuguese.json()["capacity_overrides[0].multiplier"]
    assert en_message == ("capacity_overrides[0].multiplier must be from 0.01 to 100.0 (got 1e+308).")
    with translation.override("pt-pt"):
        expected = translation.gettext(NUMBER_OUT_OF_RANGE) % {
            "field": "capacity_overrides[0].multiplier", "min": 0.01, "max": 100.0, "value": "1e+308"}
    assert pt_message == expected


def test_api_bad_input_never_reuses_an_earlier_run_and_a_valid_one_still_works(keyed_client):
    build()
    first = keyed_client.post(URL, scenario(**cap(servers=2)), format="json")
    assert first.status_code == 201, first.content
    # the same scenario with a bad seed, or servers plus a multiplier, is refused: not answered with run #1
    for bad in (scenario(**cap(servers=2), seed=2**64), scenario(**cap(servers=2, multiplier=2.0)),
                {**scenario(**cap(servers=2)), "seeed": 3}):
        response = keyed_client.post(URL, bad, format="json")
        assert response.status_code == 400 and "id" not in response.json(), response.content
    assert WhatIfRun.objects.count() == 1
    again = keyed_client.post(URL, scenario(**cap(servers=2)), format="json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = keyed_client.post(URL, scenario(**cap(multiplier=2.0)), format="json")
    assert other.status_code == 201 and other.json()["status"] == "succeeded", other.content
    assert other.json()["inputs"]["capacity_overrides"] == [{"phase_id": 2, "multiplier": 2.0}]
    assert WhatIfRun.objects.count() == 2


# --- the page's form ------------------------------------------------------------------------------------------

def form(**fields) -> dict:
    return {"priority_rule": "FIFO", "horizon_days": "14", **{k.replace("_", "-"): v for k, v in fields.items()}}


# (posted form, the label the English message must carry, a piece of the rejected value or None)
PAGE_CASES = [
    pytest.param(form(cap_0_phase="2", cap_0_servers="2", cap_0_multiplier="1.5"), "capacity row 1", None,
                 id="servers-and-multiplier"),
    pytest.param(form(cap_0_phase="2"), "capacity row 1", None, id="phase-without-capacity"),
    pytest.param(form(cap_1_servers="3"), "capacity row 2, phase", None, id="servers-without-phase"),
    pytest.param(form(cap_0_phase="77", cap_0_servers="2"), "capacity row 1, phase", "77", id="unknown-phase"),
    pytest.param(form(cap_0_phase="2", cap_0_servers=str(10**12)), "capacity row 1, servers", "1000000000000",
                 id="servers-10**12"),
    pytest.param(form(cap_0_phase="2", cap_0_servers="0"), "capacity row 1, servers", None, id="servers-zero"),
    pytest.param(form(cap_0_phase="2", cap_0_servers="-1"), "capacity row 1, servers", "-1", id="servers-negative"),
    pytest.param(form(cap_0_phase="2", cap_0_servers="três"), "capacity row 1, servers", "três", id="servers-text"),
    pytest.param(form(cap_0_phase="2", cap_0_multiplier="1e308"), "capacity row 1, multiplier", "1e308",
                 id="multiplier-1e308"),
    pytest.param(form(cap_0_phase="2", cap_0_multiplier="-0.5"), "capacity row 1, multiplier", "-0.5",
                 id="multiplier-negative"),
    pytest.param(form(dur_2_family="K9", dur_2_multiplier="1.2"), "duration row 3, family", "K9", id="unknown-family"),
    pytest.param(form(dur_0_phase="3", dur_0_multiplier="1e308"), "duration row 1, multiplier", "1e308",
                 id="duration-multiplier-1e308"),
    pytest.param(form(dur_0_phase="3"), "duration row 1, multiplier", None, id="duration-without-multiplier"),
    pytest.param({**form(), "horizon_days": str(10**9)}, "Horizon (days)", "1000000000", id="horizon-10**9"),
    pytest.param({**form(), "horizon_days": "-3"}, "Horizon (days)", "-3", id="horizon-negative"),
    pytest.param({**form(), "horizon_days": "dez"}, "Horizon (days)", "dez", id="horizon-text"),
    pytest.param({**form(), "seed": str(2**64)}, "Seed", "18446744073709551616", id="seed-2**64"),
    pytest.param({**form(), "priority_rule": "RANDOM"}, "Priority rule", "RANDOM", id="priority-unknown"),
]


@pytest.mark.parametrize(("post", "label", "echo"), PAGE_CASES)
def test_page_bad_input_is_a_400_shown_as_text(supervisor_client, post, label, echo):
    build()
    response = supervisor_client.post(PAGE, post, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400, response.content[:500]
    html = response.content.decode()
    assert 'id="whatif-form-errors"' in html and f"<li>{label}" in html, html
    if echo is not None:
        assert echo in html
    for dump in ("ErrorDetail", "[{", "{'", "[&#x27;", "code="):
        assert dump not in html, html
    # htmx swaps only 2xx answers: the same errors reach the page's result panel as a 200 partial
    partial = supervisor_client.post(PAGE, post, HTTP_ACCEPT_LANGUAGE="en", **HX)
    assert partial.status_code == 200 and f"<li>{label}" in partial.content.decode()
    assert "<html" not in partial.content.decode().lower()
    for language in LANGUAGES:  # in either language: a 400 with one text line per problem
        shown = supervisor_client.post(PAGE, post, HTTP_ACCEPT_LANGUAGE=language)
        assert shown.status_code == 400 and shown.content.decode().count("<li>") >= 1
    assert not WhatIfRun.objects.exists()


def test_page_bad_input_never_reuses_an_earlier_run_and_a_valid_one_still_works(supervisor_client):
    build()
    valid = form(cap_0_phase="2", cap_0_servers="2")
    first = supervisor_client.post(PAGE, valid, **HX)
    assert first.status_code == 200 and 'id="delta-table"' in first.content.decode(), first.content[:500]
    run = WhatIfRun.objects.get()
    # the earlier form silently kept servers and dropped the multiplier, answering with run #1
    for bad in ({**valid, "cap-0-multiplier": "3"}, {**valid, "seed": str(2**64)}, {**valid, "cap-2-servers": "4"}):
        response = supervisor_client.post(PAGE, bad, HTTP_ACCEPT_LANGUAGE="en")
        html = response.content.decode()
        assert response.status_code == 400 and 'id="delta-table"' not in html and f"#{run.pk}" not in html
    assert WhatIfRun.objects.count() == 1
    second = supervisor_client.post(PAGE, {**valid, "cap-0-servers": "", "cap-0-multiplier": "3", "seed": "5"}, **HX)
    assert second.status_code == 200 and 'id="delta-table"' in second.content.decode()
    newest = WhatIfRun.objects.order_by("-id").first()
    assert newest.pk != run.pk and newest.status == "succeeded"
    assert newest.inputs["capacity_overrides"] == [{"phase_id": 2, "multiplier": 3.0}] and newest.inputs["seed"] == 5
