/* charts.js - the detail panel's uPlot charts: the utilisation time series
 * (with the hotspot threshold) and one histogram per resource.
 *
 * Each chart is created once per selected host or VM and fed with setData()
 * on every refresh. The chart's box carries what it shows as data
 * attributes (data-points, data-values, data-n) for tests and curious
 * people. Missing samples (null) are gaps, never zeros. */
'use strict';

const RES = ['cpu', 'mem', 'net'];
const RES_COLORS = {cpu: '#d9480f', mem: '#1971c2', net: '#2f9e44'};
const THRESHOLD = 0.75; /* the agents' and the controller's default profile.<res>_threshold */

function pctAxis(u, vals) {
  return vals.map((v) => Math.round(v * 100) + '%');
}

function clockAxis(u, vals) {
  return vals.map((v) => clock(v * 1000));
}

/* [0, 1] unless the data goes above 1 */
function utilRange(u, min, max) {
  return [0, Math.max(1, isNum(max) ? max : 0)];
}

/* Keeps the chart as wide as its box. */
function followWidth(chart, height) {
  const ro = new ResizeObserver(() => {
    if (chart.plot && chart.box.clientWidth > 0)
      chart.plot.setSize({width: chart.box.clientWidth, height});
  });
  ro.observe(chart.box);
  return ro;
}

class SeriesChart {
  constructor(box) {
    this.box = box;
    this.plot = null;
    this.height = 240;
    this.ro = followWidth(this, this.height);
  }

  /* s: the answer of GET /v1/{hosts,vms}/<id>/series */
  update(s) {
    const t = (s.t || []).map((ms) => ms / 1000);
    const cols = RES.map((r) => {
      const v = (s.values && s.values[r]) || [];
      return t.map((_, i) => (isNum(v[i]) ? v[i] : null));
    });
    const data = [t, ...cols, t.map(() => THRESHOLD)];
    this.box.dataset.points = t.length;
    this.box.dataset.values = cols.reduce((n, c) => n + c.filter((v) => v !== null).length, 0);
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const now = Date.now() / 1000;
    const since = s.since || 300;
    this.plot = new uPlot({
      width: this.box.clientWidth || 600,
      height: this.height,
      scales: {
        /* with no samples yet: the requested window, empty */
        x: {time: true, range: (u, min, max) => (isNum(min) ? [min, max] : [now - since, now])},
        y: {range: utilRange},
      },
      axes: [{values: clockAxis, space: 80}, {values: pctAxis, size: 50}],
      series: [
        {value: (u, v) => (isNum(v) ? clock(v * 1000) : '–')},
        ...RES.map((r) => ({label: r, stroke: RES_COLORS[r], width: 1.5, value: (u, v) => pct(v)})),
        {label: 'threshold', stroke: '#868e96', width: 1, dash: [6, 4], points: {show: false},
         value: () => pct(THRESHOLD)},
      ],
    }, data, this.box);
  }

  destroy() {
    this.ro.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.box.replaceChildren();
    delete this.box.dataset.points;
    delete this.box.dataset.values;
  }
}

/* A dashed vertical line at the threshold (x in percent). */
function thresholdMarker(u) {
  const x = Math.round(u.valToPos(THRESHOLD * 100, 'x', true));
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = '#868e96';
  ctx.setLineDash([6, 4]);
  ctx.beginPath();
  ctx.moveTo(x, u.bbox.top);
  ctx.lineTo(x, u.bbox.top + u.bbox.height);
  ctx.stroke();
  ctx.restore();
}

class HistChart {
  constructor(box, res) {
    this.box = box;
    this.res = res;
    this.plot = null;
    this.height = 150;
    this.ro = followWidth(this, this.height);
  }

  /* h: the answer of GET /v1/{hosts,vms}/<id>/histogram */
  update(h) {
    const edges = h.edges || [];
    const counts = ((h.counts && h.counts[this.res]) || []).map((c) => (isNum(c) ? c : 0));
    const x = counts.map((_, i) => ((edges[i] + edges[i + 1]) / 2) * 100);
    this.box.dataset.bins = counts.length;
    this.box.dataset.n = counts.reduce((a, b) => a + b, 0);
    const data = [x, counts];
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const color = RES_COLORS[this.res];
    this.plot = new uPlot({
      title: this.res,
      width: this.box.clientWidth || 200,
      height: this.height,
      legend: {show: false},
      cursor: {points: {show: false}},
      scales: {
        x: {time: false, range: [0, 100]},
        y: {range: (u, min, max) => [0, Math.max(1, isNum(max) ? max : 0)]},
      },
      axes: [
        {values: (u, vals) => vals.map((v) => v + '%')},
        {size: 40},
      ],
      series: [
        {},
        {label: 'samples', stroke: color, fill: color + '99', points: {show: false},
         paths: uPlot.paths.bars({size: [0.9, Infinity], align: 0})},
      ],
      hooks: {draw: [thresholdMarker]},
    }, data, this.box);
  }

  destroy() {
    this.ro.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.box.replaceChildren();
    delete this.box.dataset.n;
    delete this.box.dataset.bins;
  }
}
