/* The device page's control charts (templates/device_chart.html): drawn when htmx has
   loaded their fragment; a zoom fetches the zoomed window again from the server, so a
   downsampled history shows every value once the window is small enough; a double
   click (autorange) goes back to the whole history. No inline script: the figure comes
   from the element's data-figure attribute (htmx drops <script> blocks of fragments). */
(function () {
  "use strict";

  function draw(root) {
    if (!window.Plotly) { return; }
    var found = Array.prototype.slice.call(root.querySelectorAll("[data-figure]"));
    if (root.hasAttribute && root.hasAttribute("data-figure")) { found.push(root); }
    found.forEach(function (target) {
      if (target.hasAttribute("data-drawing")) { return; }
      target.setAttribute("data-drawing", "true");
      var fig;
      try { fig = JSON.parse(target.getAttribute("data-figure")); } catch (e) {
        target.textContent = "chart data could not be read: " + e.message; return;
      }
      window.Plotly.newPlot(target, fig.data || [], fig.layout || {},
                            {responsive: true, displaylogo: false}).then(function () {
        target.setAttribute("data-drawn", "true");
        wireZoom(target);
        wireClick(target);
      });
    });
  }

  /* A click on a value opens its result (customdata holds /results/{id}). */
  function wireClick(target) {
    if (!target.on) { return; }
    target.on("plotly_click", function (ev) {
      var p = ev.points && ev.points[0];
      var url = p && p.customdata;
      if (typeof url === "string" && /^\/results\/\d+$/.test(url)) { window.location.assign(url); }
    });
  }

  function when(v) {
    /* plotly gives "2026-03-04 10:30:00.1234" or a number (ms); the server takes ISO */
    if (typeof v === "number") { return new Date(v).toISOString().slice(0, 23); }
    return String(v).replace(" ", "T").slice(0, 23);
  }

  function wireZoom(target) {
    var base = target.getAttribute("data-chart-url");
    if (!base || !target.on) { return; }
    var busy = false;
    target.on("plotly_relayout", function (ev) {
      if (busy) { return; }
      var a = ev["xaxis.range[0]"], b = ev["xaxis.range[1]"];
      if (a === undefined && ev["xaxis.range"]) { a = ev["xaxis.range"][0]; b = ev["xaxis.range"][1]; }
      var reset = ev["xaxis.autorange"] === true;
      if (a === undefined && !reset) { return; }
      var url = base + (reset ? "" : "&date_from=" + encodeURIComponent(when(a)) +
                                     "&date_to=" + encodeURIComponent(when(b)));
      busy = true;
      target.setAttribute("data-loading", "true");
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (body) {
          var layout = body.figure.layout || {};
          if (!reset) {
            layout.xaxis = Object.assign({}, layout.xaxis || {}, {range: [a, b], autorange: false});
          }
          return window.Plotly.react(target, body.figure.data || [], layout);
        })
        .catch(function (e) { target.setAttribute("data-error", String(e)); })
        .then(function () { busy = false; target.removeAttribute("data-loading"); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { draw(document); });
  document.addEventListener("htmx:afterSettle", function (e) { draw(e.target); });
  window.scanbenchDevice = {draw: draw};
}());
