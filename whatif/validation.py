"""The one set of rules a what-if scenario must meet (API body and page form alike): types, ranges, known phases.

A bad scenario is refused before any stored run is looked up: every problem becomes a FieldError naming
the field (the API's path, e.g. ``capacity_overrides[0].servers``, or the page's row label), in the
active language. Limits are finite on purpose: a huge horizon, seed, server count or multiplier would
overflow a conversion or run the simulator for hours; a typo'd field would silently run the default
scenario and hand back an earlier run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.utils.translation import gettext, gettext_noop, pgettext

from orders.choices import ProductFamily
from orders.models import Phase, Product
from prodplan.asof import InvalidAsOf, as_of_from
from whatif.choices import PriorityRule

HORIZON_DAYS = (1, 730)
ARRIVAL_WEEKS = (1, 104)
SEED = (0, 2**31 - 1)
SERVERS = (1, 1000)  # stations of one phase; far above any factory's, far below what would exhaust memory
MULTIPLIER = (0.01, 100.0)  # capacity and duration multipliers
ID = (1, 2**63 - 1)  # catalogue ids are bigint
MAX_OVERRIDES = 100
DEFAULTS = {"priority_rule": PriorityRule.FIFO.value, "horizon_days": 56, "arrivals": True, "arrival_weeks": 8,
            "seed": 0, "run_async": False}
SCENARIO_FIELDS = ("as_of", "priority_rule", "capacity_overrides", "coef_overrides", "horizon_days", "arrivals",
                   "arrival_weeks", "seed", "run_async")
CAPACITY_FIELDS = ("phase_id", "servers", "multiplier")
COEF_FIELDS = ("phase_id", "family", "product_id", "multiplier")
_ECHO_MAX = 40
_FORM_ROW = re.compile(r"(?:cap|dur)-([0-9]{1,2})-(?:phase|servers|multiplier|family)")
_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,40}\s*")
_NUMBER = re.compile(r"\s*[+-]?([0-9]{1,40}(\.[0-9]{0,40})?|\.[0-9]{1,40})([eE][+-]?[0-9]{1,5})?\s*")

# msgids: the lead translates them centrally (locale/); %(field)s names the field in every message
NOT_AN_OBJECT = gettext_noop("The scenario must be an object with the fields %(fields)s.")
UNKNOWN_FIELD = gettext_noop("%(field)s is not a scenario field; the fields are %(fields)s.")
NOT_A_LIST = gettext_noop("%(field)s must be a list of overrides.")
TOO_MANY = gettext_noop("%(field)s has more than %(max)s overrides.")
NOT_AN_OVERRIDE = gettext_noop("%(field)s must be an object with the fields %(fields)s.")
NOT_AN_INTEGER = gettext_noop("%(field)s must be a whole number from %(min)s to %(max)s (got '%(value)s').")
INTEGER_OUT_OF_RANGE = gettext_noop("%(field)s must be from %(min)s to %(max)s (got %(value)s).")
NOT_A_NUMBER = gettext_noop("%(field)s must be a number from %(min)s to %(max)s (got '%(value)s').")
NUMBER_OUT_OF_RANGE = gettext_noop("%(field)s must be from %(min)s to %(max)s (got %(value)s).")
NOT_A_BOOLEAN = gettext_noop("%(field)s must be true or false (got '%(value)s').")
NOT_A_CHOICE = gettext_noop("%(field)s must be one of %(choices)s (got '%(value)s').")
REQUIRED = gettext_noop("%(field)s is required.")
SERVERS_AND_MULTIPLIER = gettext_noop("%(field)s gives both servers and a multiplier: give one of them.")
NEITHER_SERVERS_NOR_MULTIPLIER = gettext_noop("%(field)s needs servers or a multiplier.")
NO_TARGET = gettext_noop("%(field)s needs a phase, a family or a product to apply to.")
UNKNOWN_PHASE = gettext_noop("%(field)s: there is no phase %(value)s.")
UNKNOWN_PRODUCT = gettext_noop("%(field)s: there is no product %(value)s.")
DUPLICATE_PHASE = gettext_noop("%(field)s: phase %(value)s already has a capacity override.")
BAD_AS_OF = gettext_noop("%(field)s: %(reason)s")


def _echo(raw) -> str:
    if isinstance(raw, int) and raw.bit_length() > 128:  # str() of a huge int is slow, and refused past 4300 digits
        return f"{'-' if raw < 0 else ''}10^{int(raw.bit_length() * math.log10(2))}…"
    text = str(raw)
    return text if len(text) <= _ECHO_MAX else text[:_ECHO_MAX] + "…"


@dataclass(frozen=True)
class FieldError:
    """One problem of a scenario: where (the API's path as a tuple) and what (an untranslated msgid + values)."""

    path: tuple
    template: str
    params: dict = field(default_factory=dict)

    @property
    def field(self) -> str:
        """The API's name of the field: capacity_overrides[0].servers."""
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text

    def message(self, field_name: str | None = None) -> str:
        """The message in the active language, naming the field (the API's path unless a label is given)."""
        params = dict(self.params)
        if "reason" in params:  # a whole message of its own (the as_of rule's), with the same values
            params["reason"] = gettext(params["reason"]) % params
        return gettext(self.template) % {**params, "field": field_name or self.field}


class ScenarioInvalid(Exception):
    """A scenario that breaks at least one rule; no run may be looked up or made for it."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.message() for e in errors))

    def as_api_errors(self) -> dict[str, list[str]]:
        """{field path: [messages]}: the body of the API's 400."""
        out: dict[str, list[str]] = {}
        for error in self.errors:
            out.setdefault(error.field, []).append(error.message())
        return out


class _Checker:
    """Collects every problem of one scenario instead of stopping at the first."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def fail(self, path: tuple, template: str, **params) -> None:
        self.errors.append(FieldError(path, template, params))

    def integer(self, path: tuple, raw, bounds: tuple[int, int]) -> int | None:
        low, high = bounds
        value = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
            value = int(raw)
        elif isinstance(raw, str) and _INTEGER.fullmatch(raw):
            value = int(raw)
        if value is None:
            self.fail(path, NOT_AN_INTEGER, min=low, max=high, value=_echo(raw))
            return None
        if not low <= value <= high:
            self.fail(path, INTEGER_OUT_OF_RANGE, min=low, max=high, value=_echo(value))
            return None
        return value

    def number(self, path: tuple, raw, bounds: tuple[float, float]) -> float | None:
        low, high = bounds
        value = None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            value = float(raw) if isinstance(raw, float) or abs(raw) < 10**300 else math.inf
        elif isinstance(raw, str) and _NUMBER.fullmatch(raw):
            value = float(raw)
        if value is None or math.isnan(value):
            self.fail(path, NOT_A_NUMBER, min=low, max=high, value=_echo(raw))
            return None
        if not low <= value <= high:
            self.fail(path, NUMBER_OUT_OF_RANGE, min=low, max=high, value=_echo(raw))
            return None
        return value

    def boolean(self, path: tuple, raw) -> bool | None:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false", "1", "0", "on", "off"):
            return raw.strip().lower() in ("true", "1", "on")
        self.fail(path, NOT_A_BOOLEAN, value=_echo(raw))
        return None

    def choice(self, path: tuple, raw, choices: list[str]) -> str | None:
        if isinstance(raw, str) and raw in choices:
            return raw
        self.fail(path, NOT_A_CHOICE, choices=", ".join(choices), value=_echo(raw))
        return None

    def unknown_fields(self, path: tuple, data: Mapping, allowed: tuple[str, ...]) -> None:
        for key in data:
            if key not in allowed:
                self.fail((*path, str(key)) if path else (str(key),), UNKNOWN_FIELD, fields=", ".join(allowed))

    def overrides(self, name: str, raw) -> list[Mapping]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.fail((name,), NOT_A_LIST)
            return []
        if len(raw) > MAX_OVERRIDES:
            self.fail((name,), TOO_MANY, max=MAX_OVERRIDES)
            return []
        return raw


def _given(item: Mapping, key: str) -> bool:
    return item.get(key) not in (None, "")


def _capacity(check: _Checker, index: int, item) -> dict | None:
    path = ("capacity_overrides", index)
    if not isinstance(item, Mapping):
        check.fail(path, NOT_AN_OVERRIDE, fields=", ".join(CAPACITY_FIELDS))
        return None
    check.unknown_fields(path, item, CAPACITY_FIELDS)
    out: dict = {}
    if not _given(item, "phase_id"):
        check.fail((*path, "phase_id"), REQUIRED)
    else:
        out["phase_id"] = check.integer((*path, "phase_id"), item["phase_id"], ID)
    has_servers, has_multiplier = _given(item, "servers"), _given(item, "multiplier")
    if has_servers and has_multiplier:
        check.fail(path, SERVERS_AND_MULTIPLIER)
    elif not (has_servers or has_multiplier):
        check.fail(path, NEITHER_SERVERS_NOR_MULTIPLIER)
    elif has_servers:
        out["servers"] = check.integer((*path, "servers"), item["servers"], SERVERS)
    else:
        out["multiplier"] = check.number((*path, "multiplier"), item["multiplier"], MULTIPLIER)
    return out


def _coef(check: _Checker, index: int, item) -> dict | None:
    path = ("coef_overrides", index)
    if not isinstance(item, Mapping):
        check.fail(path, NOT_AN_OVERRIDE, fields=", ".join(COEF_FIELDS))
        return None
    check.unknown_fields(path, item, COEF_FIELDS)
    out = {"phase_id": None, "family": None, "product_id": None}
    if _given(item, "phase_id"):
        out["phase_id"] = check.integer((*path, "phase_id"), item["phase_id"], ID)
    if _given(item, "family"):
        out["family"] = check.choice((*path, "family"), item["family"], list(ProductFamily.values))
    if _given(item, "product_id"):
        out["product_id"] = check.integer((*path, "product_id"), item["product_id"], ID)
    if not any(_given(item, k) for k in ("phase_id", "family", "product_id")):
        check.fail(path, NO_TARGET)
    if not _given(item, "multiplier"):
        check.fail((*path, "multiplier"), REQUIRED)
    else:
        out["multiplier"] = check.number((*path, "multiplier"), item["multiplier"], MULTIPLIER)
    return out


def _check_catalogue(check: _Checker, capacity: list, coef: list) -> None:
    """Phases and products named by the overrides must exist (two queries at most); a phase once in capacity."""
    phase_refs = [(("capacity_overrides", i, "phase_id"), c.get("phase_id")) for i, c in enumerate(capacity) if c]
    phase_refs += [(("coef_overrides", i, "phase_id"), c.get("phase_id")) for i, c in enumerate(coef) if c]
    product_refs = [(("coef_overrides", i, "product_id"), c.get("product_id")) for i, c in enumerate(coef) if c]
    for refs, model, template in ((phase_refs, Phase, UNKNOWN_PHASE), (product_refs, Product, UNKNOWN_PRODUCT)):
        ids = {value for _path, value in refs if value is not None}
        known = set(model.objects.filter(id__in=ids).values_list("id", flat=True)) if ids else set()
        for path, value in refs:
            if value is not None and value not in known:
                check.fail(path, template, value=value)
    seen: set[int] = set()
    for i, c in enumerate(capacity):
        phase = c.get("phase_id") if c else None
        if phase is None:
            continue
        if phase in seen:
            check.fail(("capacity_overrides", i, "phase_id"), DUPLICATE_PHASE, value=phase)
        seen.add(phase)


def clean_scenario(data) -> dict:
    """The scenario's values, typed, with defaults filled; ScenarioInvalid listing every problem otherwise.

    Returns the keys of SCENARIO_FIELDS (as_of: a datetime or None) in the shape services.canonical_inputs reads."""
    check = _Checker()
    if not isinstance(data, Mapping):
        raise ScenarioInvalid([FieldError(("non_field_errors",), NOT_AN_OBJECT, {"fields": ", ".join(SCENARIO_FIELDS)})])
    check.unknown_fields((), data, SCENARIO_FIELDS)
    out: dict = {}
    try:
        out["as_of"] = as_of_from(data.get("as_of"))
    except InvalidAsOf as exc:
        check.fail(("as_of",), BAD_AS_OF, reason=exc.template, **exc._params())
    raw_rule = data.get("priority_rule")
    out["priority_rule"] = (DEFAULTS["priority_rule"] if raw_rule in (None, "")
                            else check.choice(("priority_rule",), raw_rule, list(PriorityRule.values)))
    for name, bounds in (("horizon_days", HORIZON_DAYS), ("arrival_weeks", ARRIVAL_WEEKS), ("seed", SEED)):
        raw = data.get(name)
        out[name] = DEFAULTS[name] if raw in (None, "") else check.integer((name,), raw, bounds)
    for name in ("arrivals", "run_async"):
        raw = data.get(name)
        out[name] = DEFAULTS[name] if raw in (None, "") else check.boolean((name,), raw)
    capacity = [_capacity(check, i, item) for i, item in enumerate(check.overrides("capacity_overrides",
                                                                                 data.get("capacity_overrides")))]
    coef = [_coef(check, i, item) for i, item in enumerate(check.overrides("coef_overrides", data.get("coef_overrides")))]
    if not check.errors:  # the catalogue is asked only about well-formed ids
        _check_catalogue(check, capacity, coef)
    if check.errors:
        raise ScenarioInvalid(check.errors)
    out["capacity_overrides"], out["coef_overrides"] = capacity, coef
    return out


# --- the page's form ------------------------------------------------------------------------------------------


@dataclass
class FormScenario:
    """The page's flat form as the API's scenario payload, and the form row behind each override."""

    payload: dict
    rows: dict[str, list[int]]

    def label(self, error: FieldError) -> str:
        """A name people recognise on the page: 'capacity row 2, servers' rather than capacity_overrides[1].servers."""
        name, *rest = error.path
        if name in ("capacity_overrides", "coef_overrides") and rest and isinstance(rest[0], int):
            row = self.rows[name][rest[0]] + 1 if rest[0] < len(self.rows[name]) else rest[0] + 1
            part = rest[1] if len(rest) > 1 else None
            if name == "capacity_overrides":
                return (gettext("capacity row %(row)s, %(part)s") % {"row": row, "part": _FORM_PARTS[part]()}
                        if part in _FORM_PARTS else gettext("capacity row %(row)s") % {"row": row})
            return (gettext("duration row %(row)s, %(part)s") % {"row": row, "part": _FORM_PARTS[part]()}
                    if part in _FORM_PARTS else gettext("duration row %(row)s") % {"row": row})
        return _FORM_FIELDS[name]() if name in _FORM_FIELDS else error.field

    def messages(self, errors: list[FieldError]) -> list[str]:
        return [error.message(self.label(error)) for error in errors]


_FORM_PARTS = {
    "phase_id": lambda: pgettext("what-if form", "phase"),
    "servers": lambda: pgettext("what-if form", "servers"),
    "multiplier": lambda: pgettext("what-if form", "multiplier"),
    "family": lambda: pgettext("what-if form", "family"),
    "product_id": lambda: pgettext("what-if form", "product"),
}
_FORM_FIELDS = {
    "priority_rule": lambda: pgettext("what-if form", "Priority rule"),
    "horizon_days": lambda: pgettext("what-if form", "Horizon (days)"),
    "seed": lambda: pgettext("what-if form", "Seed"),
    "arrivals": lambda: pgettext("what-if form", "Arrivals"),
    "arrival_weeks": lambda: pgettext("what-if form", "Arrival weeks"),
    "as_of": lambda: pgettext("what-if form", "As-of date"),
}
_FORM_EXTRAS = ("seed", "arrivals", "arrival_weeks")  # not on the form today; checked whenever they are posted


def _form_rows(post, prefix: str) -> list[int]:
    """Row numbers of the posted override fields of one kind (cap-<n>-..., dur-<n>-...), in order."""
    found = {int(m.group(1)) for key in post.keys() if (m := _FORM_ROW.fullmatch(key)) and m.group(0).startswith(prefix)}
    return sorted(found)


def scenario_from_form(post) -> FormScenario:
    """The form's fields as the scenario payload; a row with anything filled in is kept, so a half-filled row
    (servers without a phase, servers and a multiplier) is refused instead of silently dropped or reduced."""
    payload: dict = {"priority_rule": post.get("priority_rule") or None, "horizon_days": post.get("horizon_days") or None,
                     "capacity_overrides": [], "coef_overrides": []}
    payload.update({k: post.get(k) for k in _FORM_EXTRAS if post.get(k) not in (None, "")})
    rows: dict[str, list[int]] = {"capacity_overrides": [], "coef_overrides": []}
    for i in _form_rows(post, "cap-"):
        cap = {"phase_id": post.get(f"cap-{i}-phase"), "servers": post.get(f"cap-{i}-servers"),
               "multiplier": post.get(f"cap-{i}-multiplier")}
        if any(cap.values()):
            payload["capacity_overrides"].append({k: v for k, v in cap.items() if v})
            rows["capacity_overrides"].append(i)
    for i in _form_rows(post, "dur-"):
        dur = {"phase_id": post.get(f"dur-{i}-phase"), "family": post.get(f"dur-{i}-family"),
               "multiplier": post.get(f"dur-{i}-multiplier")}
        if any(dur.values()):
            payload["coef_overrides"].append({k: v for k, v in dur.items() if v})
            rows["coef_overrides"].append(i)
    return FormScenario(payload=payload, rows=rows)


def clean_form(post) -> tuple[dict | None, list[str]]:
    """(validated scenario, []) or (None, messages naming the form's fields in the active language)."""
    form = scenario_from_form(post)
    try:
        return clean_scenario(form.payload), []
    except ScenarioInvalid as exc:
        return None, form.messages(exc.errors)
