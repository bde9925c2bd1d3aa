/* app.js - the dashboard's panels: cluster summary, hosts, VMs, the selected
 * host's or VM's charts, and the plan; all refreshed every REFRESH_MS.
 * The events panel is events.js. */
'use strict';

const state = {
  selected: null, /* {kind: 'host' | 'vm', id} */
  series: null,   /* SeriesChart of the selected one */
  hists: [],      /* HistChart per resource */
  busy: false,    /* a refresh is running: the timer skips a beat */
};

function setText(id, text, cls) {
  const n = document.getElementById(id);
  n.textContent = text;
  if (cls !== undefined) n.className = cls;
}

/* ----------------------------------------------------------------- summary */

function renderSummary(c) {
  const h = c.hosts || {};
  const hot = c.hotspots || [];
  // recommend in force outside the migration windows (docs/controller.md)
  const eff = c.effective_mode && c.effective_mode !== c.mode ?
    ` (in force: ${c.effective_mode}, outside the windows)` : '';
  setText('s-mode', (c.mode || '–') + eff, eff ? 'bad' : '');
  setText('s-leader', (c.leader_id || 'none') + (c.leader ? ' (this one)' : ''),
          c.leader_id ? '' : 'bad');
  setText('s-hosts', `${h.up ?? '–'} / ${h.down ?? '–'} / ${h.maintenance ?? '–'}`,
          h.down ? 'bad' : '');
  setText('s-vms', c.vms ?? '–');
  setText('s-hotspots', hot.length ? hot.join(' ') : 'none', hot.length ? 'warn' : '');
  setText('s-migrations', c.migrations_inflight ?? '–');
  setText('s-round', `#${c.round ?? '–'}, ${num(c.round_took_ms)} ms every ${c.round_ms ?? '–'} ms`);
  setText('s-redis', c.redis || '–', c.redis === 'up' ? '' : 'bad');
}

/* ------------------------------------------------------------------ tables */

/* A utilisation bar; hot ones are red, a missing value is an empty bar. */
function utilBar(v, hot, title) {
  const w = isNum(v) ? Math.min(100, Math.max(0, v * 100)) : 0;
  return el('div', {class: 'bar' + (hot ? ' hot' : ''), title},
    el('span', {style: `width: ${w.toFixed(1)}%`}), el('b', {}, pct(v)));
}

function rowAttrs(kind, id, cls) {
  const sel = state.selected && state.selected.kind === kind && state.selected.id === id;
  return {
    class: cls + (sel ? ' selected' : ''), 'data-id': id, tabindex: 0,
    onclick: () => select(kind, id),
    onkeydown: (ev) => { if (ev.key === 'Enter') select(kind, id); },
  };
}

function renderHosts(hosts) {
  const rows = hosts.map((h) => {
    const util = h.util || {}, hot = h.hot || {}, peak = h.peak || {}, fc = h.forecast || {};
    const nosamples = !h.samples;
    return el('tr', {...rowAttrs('host', h.id, h.hotspot ? 'hotspot' : ''), 'data-state': h.state},
      el('td', {}, h.id, h.excluded && el('span', {class: 'badge'}, 'excluded'),
         h.inflight > 0 && el('span', {class: 'badge mig'}, 'migrating'),
         h.empty && el('span', {class: 'badge empty', title: 'no VMs on it: it can be powered down'}, 'empty')),
      el('td', {}, el('span', {class: 'state ' + h.state}, h.state)),
      RES.map((r) => el('td', {}, nosamples ? el('span', {class: 'note'}, 'no samples')
        : utilBar(util[r], hot[r], `peak ${pct(peak[r])}, forecast ${pct(fc[r])}`))),
      el('td', {class: 'num'}, num(h.volume, 2)),
      el('td', {class: 'num'}, (h.vms || []).length),
      el('td', {class: 'num'}, isNum(h.age_s) ? h.age_s.toFixed(1) + ' s ago' : '–'));
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', {colspan: 8, class: 'note'}, 'no hosts registered')));
  document.getElementById('hosts-body').replaceChildren(...rows);
}

function rulesText(r) {
  if (!r) return '';
  const p = [];
  if (r.pin && r.pin.length) p.push('pin ' + r.pin.join(','));
  if (r.group) p.push('group ' + r.group);
  if (r.anti_group) p.push('anti ' + r.anti_group);
  if (r.exclude) p.push('excluded');
  if (r.automation && r.automation !== 'auto') p.push('automation ' + r.automation);
  return p.join('; ');
}

function renderVms(vms) {
  const rows = vms.map((v) => {
    const util = v.util || {}, peak = v.peak || {};
    const m = v.migration;
    return el('tr', {...rowAttrs('vm', v.id, v.migrating ? 'migrating' : ''), 'data-state': v.state},
      el('td', {}, v.id),
      el('td', {}, v.host || '–', v.reachable === false && el('span', {class: 'badge bad'}, 'unreachable')),
      el('td', {}, el('span', {class: 'state ' + v.state}, v.state)),
      RES.map((r) => el('td', {}, utilBar(util[r], util[r] > THRESHOLD, `peak ${pct(peak[r])}`))),
      el('td', {class: 'rules'}, rulesText(v.rules)),
      el('td', {}, v.migrating && el('span', {class: 'badge mig', title: m ? `since ${clock(m.started)}` : ''},
        'migrating' + (m ? ` ${m.src} → ${m.dst}${m.phase ? ' (' + m.phase + ')' : ''}` : ''))));
  });
  if (!rows.length) rows.push(el('tr', {}, el('td', {colspan: 8, class: 'note'}, 'no VMs')));
  document.getElementById('vms-body').replaceChildren(...rows);
}

/* -------------------------------------------------------------------- plan */

function renderPlan(p) {
  setText('plan-meta', `mode ${p.mode || '–'}, round ${p.round ?? '–'}, max volume ` +
          `${num(p.max_volume_before, 2)} → ${num(p.max_volume_after, 2)}`);
  const actions = (p.actions || []).map((a) => el('li', {class: 'action'},
    el('div', {},
      el('b', {}, a.kind), ' ', a.vm ? `vm ${a.vm} ` : '', `${a.from || '?'} → ${a.to || '?'}`,
      a.res && el('span', {class: 'badge'}, a.res),
      isNum(a.swap_id) && a.swap_id >= 0 && el('span', {class: 'badge'}, 'swap ' + a.swap_id)),
    a.reason && el('div', {class: 'reason'}, a.reason),
    el('div', {class: 'note'}, a.kind === 'resize'
      ? `in place: ${num(a.vcpus_before, 0)} → ${num(a.vcpus_after, 0)} vCPU, ` +
        `${num(a.mem_before, 0)} → ${num(a.mem_after, 0)} MiB`
      : `source volume ${num(a.src_vol_before, 2)} → ${num(a.src_vol_after, 2)}, ` +
        `target ${num(a.dst_vol_before, 2)} → ${num(a.dst_vol_after, 2)}, cost ${num(a.cost_s)} s`)));
  const unresolved = (p.unresolved || []).map((u) => el('li', {class: 'unresolved'},
    el('div', {}, el('b', {}, 'host ' + u.host), ' ', el('span', {class: 'badge warn'}, u.why || '?')),
    u.reason && el('div', {class: 'reason'}, u.reason)));
  const body = [];
  if (actions.length) body.push(el('h3', {}, 'Actions'), el('ol', {}, actions));
  if (unresolved.length) body.push(el('h3', {}, 'Unresolved hotspots'), el('ul', {}, unresolved));
  if (!body.length) body.push(el('p', {class: 'note'}, 'nothing to do'));
  document.getElementById('plan-body').replaceChildren(...body);
}

/* ------------------------------------------------------------------ detail */

function closeDetail() {
  if (state.series) state.series.destroy();
  for (const c of state.hists) c.destroy();
  state.series = null;
  state.hists = [];
  state.selected = null;
  document.getElementById('detail').hidden = true;
  banner.clear('detail');
  for (const tr of document.querySelectorAll('tr.selected')) tr.classList.remove('selected');
  if (location.hash) history.replaceState(null, '', location.pathname);
}

function select(kind, id) {
  const s = state.selected;
  if (s && s.kind === kind && s.id === id) return;
  closeDetail();
  state.selected = {kind, id};
  history.replaceState(null, '', `#${kind}=${encodeURIComponent(id)}`);
  for (const tr of document.querySelectorAll(`#${kind}s-body tr`))
    tr.classList.toggle('selected', tr.dataset.id === id);
  const panel = document.getElementById('detail');
  panel.hidden = false; /* before the charts: they take their box's width */
  panel.dataset.kind = kind;
  panel.dataset.id = id;
  setText('detail-title', `${kind === 'host' ? 'Host' : 'VM'} ${id}`);
  setText('detail-note', 'loading…');
  setText('hist-n', '');
  state.series = new SeriesChart(document.getElementById('series-chart'));
  state.hists = RES.map((r) => new HistChart(document.getElementById('hist-' + r), r));
  refreshDetail();
}

async function refreshDetail() {
  const sel = state.selected;
  if (!sel) return;
  const base = `/v1/${sel.kind}s/${encodeURIComponent(sel.id)}`;
  await api.run('detail', async () => {
    const [s, h] = await Promise.all([
      api.get(base + '/series?fields=cpu,mem,net&since=300&points=300'),
      api.get(base + '/histogram'),
    ]);
    if (sel !== state.selected) return; /* another one was picked meanwhile */
    const n = (s.t || []).length;
    setText('detail-note', n === 0 ? 'no samples yet'
      : `last ${s.since || 300} s, ${n} points` +
        (s.downsampled ? `, averaged over ${num(s.step_ms / 1000)} s` : ''));
    state.series.update(s);
    for (const c of state.hists) c.update(h);
    setText('hist-n', isNum(h.n) ? `(${h.n} samples)` : '');
  });
}

/* ----------------------------------------------------------------- refresh */

async function refresh() {
  if (state.busy || document.hidden) return;
  state.busy = true;
  try {
    await Promise.all([
      api.run('cluster', async () => renderSummary(await api.get('/v1/cluster'))),
      api.run('hosts', async () => renderHosts((await api.get('/v1/hosts')).hosts || [])),
      api.run('vms', async () => renderVms((await api.get('/v1/vms')).vms || [])),
      api.run('plan', async () => renderPlan(await api.get('/v1/plan'))),
      refreshDetail(),
    ]);
    document.body.dataset.refreshed = Date.now();
  } finally {
    state.busy = false;
  }
}

function selectFromHash() {
  const m = /^#(host|vm)=(.+)$/.exec(location.hash);
  if (m) select(m[1], decodeURIComponent(m[2]));
}

function main() {
  tokenForm.init();
  tokenForm.onChange(() => {
    refresh();
    events.start();
  });
  document.getElementById('detail-close').addEventListener('click', closeDetail);
  document.addEventListener('visibilitychange', refresh);
  selectFromHash();
  refresh();
  events.start();
  setInterval(refresh, REFRESH_MS);
}

main();
