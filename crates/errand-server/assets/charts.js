// The overview's charts: throughput, failures and latency over the last hour, drawn with
// uPlot from GET /ui/series (10-second buckets kept by the node that serves the page).
// Redrawn when the page's live stream says jobs changed, at most every 5 s; an idle
// cluster costs no request.
(function () {
  'use strict';

  var box = document.getElementById('charts');
  if (!box || typeof uPlot === 'undefined') return;
  var url = box.getAttribute('data-series');
  var REFRESH_MS = 5000;
  var charts = [];
  var last = 0;
  var timer = null;

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function width(el) {
    return Math.max(260, el.clientWidth || 320);
  }

  function opts(el, series, unit) {
    var fg = css('--muted');
    var grid = css('--line');
    return {
      width: width(el),
      height: 180,
      scales: { x: { time: true } },
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      axes: [
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 56,
          values: function (u, vals) { return vals.map(function (v) { return v == null ? '' : v + unit; }); } }
      ],
      series: [{}].concat(series.map(function (s) {
        return { label: s[0], stroke: css(s[1]), width: 1.5, spanGaps: false, points: { show: false } };
      }))
    };
  }

  var layout = [
    { el: 'chart-throughput', unit: '', series: [['enqueued', '--chart-1'], ['succeeded', '--chart-2']],
      pick: function (d) { return [d.enqueued, d.succeeded]; } },
    { el: 'chart-failures', unit: '', series: [['failed (will retry)', '--chart-3'], ['dead', '--chart-4']],
      pick: function (d) { return [d.failed, d.dead]; } },
    { el: 'chart-latency', unit: ' ms', series: [['wait p50', '--chart-1'], ['wait p95', '--chart-3'], ['run p50', '--chart-2'], ['run p95', '--chart-4']],
      pick: function (d) { return [d.wait_p50, d.wait_p95, d.run_p50, d.run_p95]; } }
  ];

  function draw(d) {
    layout.forEach(function (c, i) {
      var data = [d.t].concat(c.pick(d));
      if (charts[i]) {
        charts[i].setData(data);
      } else {
        var el = document.getElementById(c.el);
        charts[i] = new uPlot(opts(el, c.series, c.unit), data, el);
      }
    });
    box.setAttribute('data-loaded', String(Date.now()));
  }

  function load() {
    timer = null;
    last = Date.now();
    fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(draw)
      .catch(function () { /* the next change tries again */ });
  }

  // The live stream's "jobs changed", as htmx dispatches it on this element.
  box.addEventListener('sse:changed-jobs', function () {
    if (timer) return;
    var wait = Math.max(0, last + REFRESH_MS - Date.now());
    timer = setTimeout(load, wait);
  });

  window.addEventListener('resize', function () {
    layout.forEach(function (c, i) {
      if (charts[i]) {
        var el = document.getElementById(c.el);
        charts[i].setSize({ width: width(el), height: 180 });
      }
    });
  });

  load();
})();
