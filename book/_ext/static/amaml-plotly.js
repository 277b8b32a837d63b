// The book's plotly loader (book/_ext/amaml_book.py): draw every figure a notebook saved, with its frames
// (the kernel-free explorers' slider steps animate to them).  Loaded deferred, after plotly.min.js.
//
// On a narrow screen (under NARROW px, a phone) a figure of panels side by side is drawn as a column: every panel
// full width, one under another, in reading order (row by row, left to right), each as tall as it was; its panel
// titles move with it; the controls above the panels and the legend below keep their distance in pixels; a row of
// buttons becomes a drop-down, which fits any width; the mode bar is left out (it would cover the title).  At any
// width a title longer than its figure (or a panel's title longer than its panel) is wrapped to fit.  A line
// above a stacked figure tells the reader that a note's "left" and "right" panels are now one above the other.
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

  function legendBelow(layout, data) {
    // a legend at the right (plotly's default) takes half a phone's width from the panels: under them instead,
    // two entries a row, the bottom margin grown to hold it
    const legend = layout.legend || {};
    const entries = data.filter(t => t.showlegend !== false && t.name).length;
    if (legend.orientation === "h" || layout.showlegend === false || entries < 2) return layout;
    const out = JSON.parse(JSON.stringify(layout)), margin = out.margin = out.margin || {};
    const bottom = margin.b === undefined ? 80 : margin.b, top = margin.t === undefined ? 100 : margin.t;
    const extra = Math.ceil(entries / 2) * 22 + 20;
    margin.b = bottom + extra;
    out.height = (out.height || 450) + extra;
    const plot = out.height - top - margin.b;
    out.legend = Object.assign({}, legend, {orientation: "h", x: 0, xanchor: "left", yanchor: "top",
                                            y: -(bottom - 10) / plot});
    return out;
  }

  const CHAR = 0.6;  // a character's width, as a fraction of its font size (plotly's default font, generously)

  function visible(line) { return line.replace(/<[^>]*>/g, "").length; }

  function wrap(text, chars) {
    // ``text`` with a part longer than ``chars`` visible characters on a line broken anew at spaces (plotly's
    // <br>); a part that fits keeps its lines, and a break before a tag (a subtitle's <sup>) always stays
    return text.split(/<br\s*\/?>(?=<)/i).map(function (part) {
      const old = part.split(/<br\s*\/?>/i);
      if (old.every(line => visible(line) <= chars)) return part;
      const out = [];
      let now = "";
      old.join(" ").split(" ").forEach(function (word) {
        if (now && visible(now) + 1 + visible(word) > chars) { out.push(now); now = word; }
        else now = now ? now + " " + word : word;
      });
      return out.concat([now]).join("<br>");
    }).join("<br>");
  }

  function lines(text) { return text.split(/<br\s*\/?>/i).length; }

  function fitTitles(layout, width) {
    // the figure's title and its panels' titles wrapped to the width they have (a figure's text does not wrap by
    // itself), and room made above the panels for both: the title at the figure's top edge, the top row's panel
    // titles under it (a figure with controls above its panels keeps its layout, grown by the new lines)
    const out = JSON.parse(JSON.stringify(layout)), margin = out.margin = out.margin || {};
    const base = (out.font && out.font.size) || 12, top = margin.t === undefined ? 100 : margin.t;
    if (typeof out.title === "string") out.title = {text: out.title};
    const title = out.title && out.title.text ? out.title : null;
    const tsize = title ? (title.font && title.font.size) || base * 1.4 : 0;
    const titleHeight = () => (title ? lines(title.text) * tsize * 1.3 + 10 : 0);
    const before = {title: titleHeight(), panels: 0}, after = {panels: 0};
    if (title) title.text = wrap(title.text, Math.max(12, Math.floor((width - 20) / (CHAR * tsize))));
    after.title = titleHeight();
    const plot = width - (margin.l === undefined ? 80 : margin.l) - (margin.r === undefined ? 80 : margin.r);
    const panels = Object.values(domains(out)), first = Math.max(...panels.map(p => p.y[1]), 0) - 1e-6;
    (out.annotations || []).forEach(function (a) {  // a panel's title: centred on it, at its top
      const panel = panels.find(p => a.xref === "paper" && Math.abs(a.x - (p.x[0] + p.x[1]) / 2) < 1e-6
                                     && Math.abs(a.y - p.y[1]) < 1e-6);
      if (!panel || !a.text) return;
      const size = (a.font && a.font.size) || base, height = () => lines(a.text) * size * 1.3;
      if (panel.y[1] >= first) before.panels = Math.max(before.panels, height());
      a.text = wrap(a.text, Math.max(8, Math.floor((panel.x[1] - panel.x[0]) * plot / (CHAR * size))));
      if (panel.y[1] >= first) after.panels = Math.max(after.panels, height());
    });
    const controls = (out.sliders || []).concat(out.updatemenus || []).some(c => c.y !== undefined && c.y > 1);
    const needed = controls ? top + after.title - before.title + after.panels - before.panels
                            : Math.max(top, after.title + after.panels + 18);
    if (title && !controls) Object.assign(title, {yref: "container", y: 1, yanchor: "top", pad: {t: 14}});
    if (needed > top) {
      margin.t = needed;
      out.height = (out.height || 450) + needed - top;
    }
    const grown = after.panels - before.panels;  // the top panels' titles grew upward by this many px
    if (controls && grown > 0) {  // the controls above the panels move up as far, clear of them
      const plot = out.height - margin.t - (margin.b === undefined ? 80 : margin.b);
      (out.sliders || []).concat(out.updatemenus || []).forEach(function (c) {
        if (c.y !== undefined && c.y > 1) c.y += grown / plot;
      });
    }
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
      const stacked = narrow(layout, layout.height || 450);
      layout = legendBelow(stacked || layout, figure.data || []);
      config.displayModeBar = false;  // on a phone its icons would cover the title
      if (stacked) {  // the notes beside a figure speak of panels side by side
        const note = document.createElement("p");
        note.className = "amaml-stacked-note";
        note.textContent = "On this screen the panels are stacked in reading order (row by row, left to right): "
                           + "where a note says left and right, read upper and lower.";
        div.parentNode.insertBefore(note, div);
      }
    }
    if (div.clientWidth) layout = fitTitles(layout, div.clientWidth);
    return Plotly.newPlot(div, {data: figure.data || [], layout: layout, frames: figure.frames || [],
                                config: config}).then(keepLegend);
  }
  document.querySelectorAll("script.amaml-plotly-data").forEach(function (script) {
    draw(script).catch(function (err) { console.error("amaml-plotly: a figure could not be drawn", err); });
  });
})();
