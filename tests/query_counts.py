"""Exact query counts of the API endpoints and pages, pinned in one file (as NetBox does).

A test asserts one with `with pinned_queries("name"):` (tests/conftest.py): exactly this many queries, not an upper
bound, so a change in what an endpoint or page costs is a visible diff here. Every count is measured from a
deterministic state: each test starts with the caches empty (tests/conftest.py clear_caches) and warms what it says.
To measure after a deliberate change, record instead of asserting and copy the figures here:

    PRODPLAN_MEASURE_QUERIES=/tmp/counts.tsv .venv/bin/python -m pytest <the tests> ; sort -u /tmp/counts.tsv

Names: "<app>.<test module>.<test>[k]" for the k-th pinned block of a test; "orders.api.analytic[<url>]" for the
parametrized analytic endpoints (first call after the as-of is warmed; ".cached" the repeat the cache answers).
"""

QUERY_COUNTS: dict[str, int] = {
    # ingestion
    "ingestion.test_views.test_page_lists_runs_and_links_rejects": 8,  # + the user's and groups' permissions (admin links only for who may open them); the staff steward skips the group check
    "ingestion.test_views.test_run_report_matches_the_manifest": 10,  # + the user's and groups' permissions (admin links only for who may open them)
    # inventory
    "inventory.test_api.test_gelcoat_theoretical_usage_matches_rows": 6,
    "inventory.test_api.test_unsupported_features_name_missing_data": 0,
    "inventory.test_api.test_wip_is_the_order_state": 8,
    "inventory.test_api.test_wip_mass_matches_rows": 9,
    "inventory.test_views.test_inventory_page_is_labelled_theoretical": 4,
    "inventory.test_views.test_wip_mass_and_gelcoat_widgets": 11,
    # mlops
    "mlops.test_api.test_predict_and_explain": 6,
    "mlops.test_eta.test_train_promote_predict_store_and_fall_back": 10,  # key, as-of, one feature query (+ savepoint, settings), registry, backtest
    "mlops.test_views.test_models_page_empty_registry": 6,  # + the latest "train now" jobs and the train-role check
    "mlops.test_views.test_models_page_lists_the_registry": 6,  # + the latest "train now" jobs and the train-role check
    "mlops.test_views.test_models_page_shows_why_a_classifier_was_refused": 6,  # + the latest "train now" jobs and the train-role check
    # orders
    "orders.api.analytic.cached[/api/kpis/by-employee]": 0,
    "orders.api.analytic.cached[/api/kpis/by-phase]": 0,
    "orders.api.analytic.cached[/api/kpis/by-product]": 0,
    "orders.api.analytic.cached[/api/kpis/overview]": 0,
    "orders.api.analytic.cached[/api/prodplan/bottlenecks]": 0,
    "orders.api.analytic.cached[/api/prodplan/orders/stalled]": 0,
    "orders.api.analytic.cached[/api/prodplan/orders/states]": 0,
    "orders.api.analytic.cached[/api/prodplan/risk_queue]": 0,
    "orders.api.analytic.cached[/api/prodplan/routes/101]": 0,
    "orders.api.analytic.cached[/api/prodplan/schedule/current]": 0,
    "orders.api.analytic[/api/kpis/by-employee]": 3,  # + the reader's user and group permissions (may it see employee names?)
    "orders.api.analytic[/api/kpis/by-phase]": 3,
    "orders.api.analytic[/api/kpis/by-product]": 4,
    "orders.api.analytic[/api/kpis/overview]": 4,
    "orders.api.analytic[/api/prodplan/bottlenecks]": 44,  # 12 weekly rankings, each with the order state at its own date
    "orders.api.analytic[/api/prodplan/orders/stalled]": 3,
    "orders.api.analytic[/api/prodplan/orders/states]": 3,
    "orders.api.analytic[/api/prodplan/risk_queue]": 7,  # with the standard routes the bottleneck forecast reads (cached)
    "orders.api.analytic[/api/prodplan/routes/101]": 4,
    "orders.api.analytic[/api/prodplan/schedule/current]": 3,  # open orders' states, the count of finished ones
    "orders.test_api.test_order_detail_and_timeline": 4,  # the order, its state row, its counts
    "orders.test_api.test_order_detail_and_timeline[2]": 3,  # the order, its phases with team sizes, the product's route
    "orders.test_click_through.test_sorted_filtered_list_and_pinned_queries": 4,  # filtered ids and lead times, the page's rows, their states
    # 9 + the timeline's forecast from mlops (a finished order here): its stored lead-time prediction (1), and on a
    # cold cache the lead time predicted from the features at creation (feature frame, the active model, 7)
    "orders.test_views.test_order_detail_gantt_errors_and_prediction": 18,
    "orders.test_views.test_order_list_keyset_pages_and_filters": 7,  # + the count of the filter and the open orders for the tiles
    "orders.test_views.test_order_list_keyset_pages_and_filters[2]": 4,
    "orders.test_views.test_overview_kpis_match_the_api_and_the_rows": 11,
    "orders.test_views.test_overview_page_lazy_widgets_and_freshness": 7,
    # quality
    "quality.test_api.test_by_phase_matches_rows": 5,
    "quality.test_api.test_by_product_and_first_pass_yield": 5,
    "quality.test_api.test_escapes_match_rows": 5,
    "quality.test_api.test_heatmap_matches_rows": 5,
    "quality.test_api.test_overview_matches_rows": 5,
    "quality.test_api.test_risk_levels_and_fallback": 5,
    "quality.test_errors_list.test_pages_newest_first_and_the_period_filter": 6,  # one statement, in its transaction with JIT off
    "quality.test_ingested.test_overview_on_workbook": 6,
    "quality.test_services.test_warm_cache_makes_first_requests_hits": 0,
    "quality.test_views.test_defects_by_family_and_product_match_rows": 8,  # the by-product widget, cache empty: its one statement (in a savepoint, JIT off) and the request's own
    "quality.test_views.test_quality_page_and_widgets": 4,
    "quality.test_views.test_quality_page_and_widgets[2]": 6,
    # whatif
    "whatif.test_api.test_runs_list_newest_first_with_cursor": 1,
    "whatif.test_views.test_form_offers_real_phases_and_families": 11,  # the stations: spans, calendar, queues before the phases
}
