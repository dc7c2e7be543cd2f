/* PRODPLAN pages: charts from JSON the views render (json_script), language auto-submit, small helpers. */
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
      canvas._chart = new window.Chart(canvas, config);
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
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    if (window.htmx) {
      window.htmx.onLoad(function (element) { init(element.parentElement || document); });
    }
  });
})();
