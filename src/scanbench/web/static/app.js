/* scanbench pages: figures from JSON data blocks, sortable and filterable tables.
   No inline script anywhere (the Content-Security-Policy allows scripts from 'self' only):
   pages put their data in <script type="application/json"> blocks that this file reads. */
(function () {
  "use strict";

  /* Figures: <div id=X data-plot-target> + <script type="application/json" data-plot="X">. */
  function drawPlots(root) {
    if (!window.Plotly) { return; }
    root.querySelectorAll('script[type="application/json"][data-plot]').forEach(function (block) {
      var target = document.getElementById(block.getAttribute("data-plot"));
      if (!target || target.hasAttribute("data-drawn")) { return; }
      var fig;
      try { fig = JSON.parse(block.textContent); } catch (e) {
        target.textContent = "figure data could not be read: " + e.message; return;
      }
      var config = Object.assign({responsive: true, displaylogo: false}, fig.config || {});
      window.Plotly.newPlot(target, fig.data || [], fig.layout || {}, config).then(function () {
        target.setAttribute("data-drawn", "true");
      });
    });
  }

  /* Sorting: click a <th data-sort> of a table.sortable; a cell's data-value is its sort
     key (numbers compared as numbers when the header has data-sort="num"). */
  function cellKey(row, index, numeric) {
    var cell = row.cells[index];
    if (!cell) { return numeric ? -Infinity : ""; }
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    if (numeric) { var v = parseFloat(raw); return isNaN(v) ? -Infinity : v; }
    return raw.toLowerCase();
  }

  function sortBy(th) {
    var table = th.closest("table");
    var body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-sort") === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var ka = cellKey(a, index, numeric), kb = cellKey(b, index, numeric);
      var c = ka < kb ? -1 : ka > kb ? 1 : 0;
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  /* Filtering: <input data-filter-table=ID> matches the row's text; <select
     data-filter-table=ID data-filter-key=K> matches the row's data-K attribute. */
  function applyFilters(tableId) {
    var table = document.getElementById(tableId);
    if (!table) { return; }
    var controls = document.querySelectorAll('[data-filter-table="' + tableId + '"]');
    var shown = 0, total = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var visible = true;
      controls.forEach(function (c) {
        var want = c.value.trim().toLowerCase();
        if (!want) { return; }
        var key = c.getAttribute("data-filter-key");
        var have = key ? (row.getAttribute("data-" + key) || "").toLowerCase() : row.textContent.toLowerCase();
        if (key ? have !== want : have.indexOf(want) < 0) { visible = false; }
      });
      row.hidden = !visible;
      total += 1; if (visible) { shown += 1; }
    });
    document.querySelectorAll('[data-count-for="' + tableId + '"]').forEach(function (el) {
      el.textContent = shown + " of " + total + " shown";
    });
  }

  function wire(root) {
    root.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
      if (th.hasAttribute("data-wired")) { return; }
      th.setAttribute("data-wired", "true");
      th.setAttribute("tabindex", "0");
      th.addEventListener("click", function () { sortBy(th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(th); } });
    });
    var ids = {};
    root.querySelectorAll("[data-filter-table]").forEach(function (c) {
      var id = c.getAttribute("data-filter-table");
      ids[id] = true;
      if (c.hasAttribute("data-wired")) { return; }
      c.setAttribute("data-wired", "true");
      c.addEventListener(c.tagName === "SELECT" ? "change" : "input", function () { applyFilters(id); });
    });
    Object.keys(ids).forEach(applyFilters);
    drawPlots(root);
  }

  document.addEventListener("DOMContentLoaded", function () { wire(document); });
  document.addEventListener("htmx:afterSwap", function (e) { wire(e.target); });
  window.scanbench = {drawPlots: drawPlots, applyFilters: applyFilters, wire: wire};
}());
