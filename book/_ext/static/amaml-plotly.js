// The book's plotly loader (book/_ext/amaml_book.py): draw every figure a notebook saved, with its frames
// (the kernel-free explorers' slider steps animate to them).  Loaded deferred, after plotly.min.js.
(function () {
  "use strict";
  function draw(script) {
    const figure = JSON.parse(script.textContent);
    const div = document.createElement("div");
    div.className = "amaml-plotly-figure";
    script.parentNode.appendChild(div);
    const config = Object.assign({responsive: true, displaylogo: false}, figure.config || {});
    return Plotly.newPlot(div, {data: figure.data || [], layout: figure.layout || {}, frames: figure.frames || [],
                                config: config});
  }
  document.querySelectorAll("script.amaml-plotly-data").forEach(function (script) {
    draw(script).catch(function (err) { console.error("amaml-plotly: a figure could not be drawn", err); });
  });
})();
