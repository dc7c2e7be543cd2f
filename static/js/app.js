/* PRODPLAN pages: charts from JSON the views render (json_script), language auto-submit, widget errors with retry,
   the phone menu and card tables. */
(function () {
  "use strict";

  function percentTicks(config) {
    // Axis options can say {"format": "percent"}: render 0.25 as 25%.
    var scales = (config.options && config.options.scales) || {};
    Object.keys(scales).forEach(function (key) {
      var axis = scales[key];
      if (axis && axis.format === "percent") {
        delete axis.format;
        axis.ticks = axis.ticks || {};
        axis.ticks.callback = function (value) { return Math.round(value * 100) + "%"; };
      }
    });
    return config;
  }

  function barLinks(config) {
    // Datasets can carry "links" (one URL per bar, null for none): a click on a bar opens its list, at the page's
    // explicit ?as_of= when it has one. The same links are in a table next to the chart for keyboards and readers.
    var datasets = (config.data && config.data.datasets) || [];
    if (!datasets.some(function (d) { return d.links; })) { return config; }
    var asOf = new URLSearchParams(window.location.search).get("as_of");
    function linkOf(elements) {
      if (!elements || !elements.length) { return null; }
      var links = datasets[elements[0].datasetIndex].links || [];
      return links[elements[0].index] || null;
    }
    config.options.onClick = function (event, elements) {
      var url = linkOf(elements);
      if (url) { window.location.href = url + (asOf ? "&as_of=" + encodeURIComponent(asOf) : ""); }
    };
    config.options.onHover = function (event, elements) {
      event.native.target.style.cursor = linkOf(elements) ? "pointer" : "default";
    };
    return config;
  }

  function initCharts(root) {
    if (typeof window.Chart === "undefined") { return; }
    root.querySelectorAll("canvas.js-chart:not([data-ready])").forEach(function (canvas) {
      var source = document.getElementById(canvas.dataset.config);
      if (!source) { return; }
      canvas.setAttribute("data-ready", "1");
      var config = percentTicks(JSON.parse(source.textContent));
      config.options = config.options || {};
      config.options.responsive = true;
      config.options.maintainAspectRatio = false;
      config.options.animation = false;
      canvas._chart = new window.Chart(canvas, barLinks(config));
    });
  }

  function initAutosubmit(root) {
    root.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      if (select.dataset.bound) { return; }
      select.dataset.bound = "1";
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  function init(root) {
    initCharts(root);
    initAutosubmit(root);
    initCardTables(root);
  }

  // Tables marked data-cards (and the risk queue) turn into cards on a phone: each cell carries its column's
  // header as data-label, which the CSS shows before the value.
  function initCardTables(root) {
    root.querySelectorAll("table[data-cards], table#risk-table").forEach(function (table) {
      var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
        return th.textContent.trim();
      });
      table.classList.add("as-cards");
      table.querySelectorAll("tbody tr").forEach(function (row) {
        Array.prototype.forEach.call(row.children, function (cell, i) {
          if (heads[i] && !cell.hasAttribute("data-label")) { cell.setAttribute("data-label", heads[i]); }
        });
      });
    });
  }

  // A lazily loaded widget whose request fails (an HTTP error or no network) says so in the page's language
  // and offers a button that issues the same request again, instead of "Loading…" forever.
  function widgetText(name) { return document.body.getAttribute("data-widget-" + name) || ""; }

  function showWidgetError(slot, network, status) {
    slot.classList.remove("widget-slot");
    slot.classList.add("widget-error", "widget-failed");
    slot.removeAttribute("aria-busy");
    slot.setAttribute("role", "alert");
    slot.textContent = "";
    var message = document.createElement("span");
    message.className = "widget-error-text";
    message.textContent = widgetText(network ? "network-error" : "http-error") + (status ? " (HTTP " + status + ")." : ".");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "secondary btn-retry";
    button.textContent = widgetText("retry");
    button.addEventListener("click", function () { retryWidget(slot); });
    slot.appendChild(message);
    slot.appendChild(document.createTextNode(" "));
    slot.appendChild(button);
  }

  function retryWidget(slot) {
    slot.classList.remove("widget-error", "widget-failed");
    slot.classList.add("widget-slot");
    slot.removeAttribute("role");
    slot.setAttribute("aria-busy", "true");
    slot.textContent = "";
    var spinner = document.createElement("span");
    spinner.className = "spinner";
    spinner.setAttribute("aria-hidden", "true");
    slot.appendChild(spinner);
    slot.appendChild(document.createTextNode(" " + widgetText("loading")));
    window.htmx.ajax("GET", slot.getAttribute("hx-get"), {source: slot, target: slot, swap: "outerHTML"});
  }

  function onRequestFailed(event) {
    var slot = event.detail && event.detail.elt;
    if (!slot || !slot.classList || !slot.hasAttribute("hx-get")) { return; }
    if (!slot.classList.contains("widget-slot") && !slot.classList.contains("widget-failed")) { return; }
    var xhr = event.detail.xhr;
    var network = event.type !== "htmx:responseError";
    showWidgetError(slot, network, network ? 0 : (xhr && xhr.status));
  }

  // A panel whose content is wider than its box scrolls sideways: while it overflows it takes keyboard focus,
  // so it can be scrolled without a mouse.
  function markScrollables() {
    document.querySelectorAll(".panel, .scroll-x").forEach(function (el) {
      var overflows = el.scrollWidth > el.clientWidth + 1;
      if (overflows && !el.hasAttribute("tabindex")) {
        el.setAttribute("tabindex", "0");
        el.setAttribute("data-scroll-focus", "1");
      } else if (!overflows && el.hasAttribute("data-scroll-focus")) {
        el.removeAttribute("tabindex");
        el.removeAttribute("data-scroll-focus");
      }
    });
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(markScrollables, 150);
  });
  document.addEventListener("htmx:afterSettle", markScrollables);

  // Collapsible navigation on narrow screens: the menu button shows and hides the links.
  function initNavToggle() {
    var button = document.getElementById("nav-toggle");
    var nav = document.getElementById("main-nav");
    if (!button || !nav) { return; }
    button.addEventListener("click", function () {
      var open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", open ? "true" : "false");
      nav.classList.toggle("open", open);
    });
  }

  document.documentElement.classList.add("js");
  document.addEventListener("htmx:responseError", onRequestFailed);
  document.addEventListener("htmx:sendError", onRequestFailed);
  document.addEventListener("htmx:timeout", onRequestFailed);

  document.addEventListener("DOMContentLoaded", function () {
    initNavToggle();
    init(document);
    markScrollables();
    if (window.htmx) {
      window.htmx.onLoad(function (element) { init(element.parentElement || document); });
    }
  });
})();
