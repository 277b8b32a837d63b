// The book's plotly loader (book/_ext/amaml_book.py): draw every figure a notebook saved, with its frames
// (the kernel-free explorers' slider steps animate to them).  Loaded deferred, after plotly.min.js.
//
// On a narrow screen (under NARROW px, a phone) a figure of panels side by side is drawn as a column: every panel
// full width, one under another, in reading order (row by row, left to right), each as tall as it was; its panel
// titles move with it; the controls above the panels and the legend below keep their distance in pixels; a row of
// buttons becomes a drop-down, which fits any width; the mode bar is left out (it would cover the title).
// Where traces name a legend entry (meta.legend), what the reader hid in the legend stays hidden when a button
// shows another set of traces.
(function () {
  "use strict";
  const NARROW = 600;
  const GAP = 0.45;  // the space between stacked panels, as a fraction of one panel's height (its axis titles)

  function domains(layout) {
    // {x axis name: {x: [x0, x1], y: [y0, y1], yname}} of every panel (an x axis anchored to a y axis)
    const panels = {};
    Object.keys(layout).filter(k => /^xaxis\d*$/.test(k)).forEach(function (k) {
      const ax = layout[k], yname = "yaxis" + (ax.anchor || "y").slice(1), ay = layout[yname];
      if (ax.domain && ay && ay.domain) panels[k] = {x: ax.domain, y: ay.domain, yname: yname};
    });
    return panels;
  }

  function narrow(layout, height) {
    // the layout with its panels stacked; null when it has no two panels side by side
    const panels = domains(layout), names = Object.keys(panels);
    const columns = new Set(names.map(k => panels[k].x.join()));
    if (names.length < 2 || columns.size < 2) return null;
    names.sort((a, b) => (panels[b].y[0] - panels[a].y[0]) || (panels[a].x[0] - panels[b].x[0]));
    const out = JSON.parse(JSON.stringify(layout));
    const margin = out.margin || {}, top = margin.t === undefined ? 100 : margin.t;
    const bottom = margin.b === undefined ? 80 : margin.b, plot = height - top - bottom;
    const tall = Math.max(...names.map(k => panels[k].y[1] - panels[k].y[0])) * plot;  // one panel, in px
    const total = names.length * tall * (1 + GAP), newHeight = top + bottom + total;
    const place = {};
    names.forEach(function (k, i) {
      const y1 = 1 - (i * tall * (1 + GAP)) / total, y0 = y1 - tall / total;
      place[k] = [y0, y1];
      out[k].domain = [0, 1];
      out[panels[k].yname].domain = [y0, y1];
    });
    (out.annotations || []).forEach(function (a) {  // panel titles: centred on a panel, just above it
      const k = names.find(n => a.xref === "paper" && a.yref === "paper" && Math.abs(a.x - (panels[n].x[0] + panels[n].x[1]) / 2) < 1e-6
                                && Math.abs(a.y - panels[n].y[1]) < 1e-6);
      if (k) { a.x = 0.5; a.y = place[k][1]; }
    });
    const scale = plot / total;  // keep the pixel distance of what sits above or below the panels
    (out.sliders || []).concat(out.updatemenus || []).forEach(function (c) {
      if (c.y !== undefined && c.y > 1) c.y = 1 + (c.y - 1) * scale;
    });
    (out.updatemenus || []).forEach(function (m) {
      if (!m.type || m.type === "buttons") m.type = "dropdown";
    });
    if (out.legend && out.legend.y !== undefined && out.legend.y < 0) out.legend.y *= scale;
    out.height = newHeight;
    return out;
  }

  function keepLegend(gd) {
    // a figure whose traces name a legend entry in meta.legend (the kernel-free explorers, whose buttons show one
    // set of traces at a time): what the reader hid in the legend stays hidden when a button shows another set
    const key = t => t.meta && t.meta.legend;
    let hidden = new Set();
    function read() {  // the entries hidden now: some trace of theirs hidden by the legend, none shown
      const shown = new Set(gd.data.filter(t => t.visible === true).map(key));
      hidden = new Set(gd.data.filter(t => t.visible === "legendonly" && !shown.has(key(t))).map(key));
    }
    function apply() {
      const again = gd.data.map((t, i) => (t.visible === true && hidden.has(key(t)) ? i : -1)).filter(i => i >= 0);
      if (again.length) Plotly.restyle(gd, {visible: "legendonly"}, again);
    }
    if (!gd.data.some(key)) return;
    // a legend click acts only once plotly has told it from a double click; a button's restyle may finish after
    // its event: read and apply once each has
    const settle = (gd._context.doubleClickDelay || 300) + 50;
    let clicked = false;  // the legend's own restyles: the reader's choice, never undone here
    function legend() {
      clicked = true;
      setTimeout(() => { read(); clicked = false; }, settle);
    }
    gd.on("plotly_legendclick", legend);
    gd.on("plotly_legenddoubleclick", legend);
    gd.on("plotly_buttonclicked", () => { setTimeout(apply, 0); });
    gd.on("plotly_restyle", () => { if (!clicked && hidden.size) setTimeout(apply, 0); });
  }

  function draw(script) {
    const figure = JSON.parse(script.textContent);
    const div = document.createElement("div");
    div.className = "amaml-plotly-figure";
    script.parentNode.appendChild(div);
    const config = Object.assign({responsive: true, displaylogo: false}, figure.config || {});
    let layout = figure.layout || {};
    if (div.clientWidth && div.clientWidth < NARROW) {
      layout = narrow(layout, layout.height || 450) || layout;
      config.displayModeBar = false;  // on a phone its icons would cover the title
    }
    return Plotly.newPlot(div, {data: figure.data || [], layout: layout, frames: figure.frames || [],
                                config: config}).then(keepLegend);
  }
  document.querySelectorAll("script.amaml-plotly-data").forEach(function (script) {
    draw(script).catch(function (err) { console.error("amaml-plotly: a figure could not be drawn", err); });
  });
})();
