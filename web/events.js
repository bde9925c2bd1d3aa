/* events.js - the decision log panel: the newest EVENTS_MAX entries of the
 * controller's `events` stream, newest first.
 *
 * Filled from GET /v1/events?count=50, then live from the server-sent
 * events of GET /v1/events/stream. EventSource cannot send an Authorization
 * header, so with a token (or when the stream is refused) it long-polls
 * GET /v1/events?after=<last>&wait=10 instead. Entries are kept by stream id,
 * so a catch-up that overlaps the stream adds nothing twice. */
'use strict';

const EVENTS_MAX = 200;
/* docs/controller.md, "Decision log": SSE delivers a named event only to a
 * listener of that name. */
const EVENT_TYPES = [
  'controller_started', 'leader_acquired', 'leader_lost', 'hotspot', 'hotspot_cleared',
  'recommend', 'unresolved', 'migration_started', 'migration_done', 'migration_failed',
  'migration_measured', 'migration_adopted', 'migration_reconciled', 'host_down', 'host_up',
  'maintenance_on', 'maintenance_off', 'vm_placed', 'vm_place_refused', 'vm_created',
  'vm_deleted', 'vm_lost',
];
const EVENT_CLASS = {
  hotspot: 'warn', unresolved: 'warn', recommend: 'info', maintenance_on: 'warn',
  migration_failed: 'bad', host_down: 'bad', vm_lost: 'bad', vm_place_refused: 'bad',
  leader_lost: 'bad', hotspot_cleared: 'good', migration_done: 'good', host_up: 'good',
  migration_measured: 'good',
};

/* stream ids "<ms>-<seq>": <0, 0, >0 */
function idCmp(a, b) {
  const [am, as] = String(a).split('-').map(Number);
  const [bm, bs] = String(b).split('-').map(Number);
  return am - bm || (as || 0) - (bs || 0);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function eventSummary(e) {
  const p = [];
  if (e.vm) p.push('vm ' + e.vm);
  if (e.host) p.push('host ' + e.host);
  if (e.from || e.to) p.push(`${e.from || '?'} → ${e.to || '?'}`);
  if (e.res) p.push(e.res);
  if (e.util !== undefined) p.push('util ' + pct(Number(e.util)));
  if (e.forecast !== undefined) p.push('forecast ' + pct(Number(e.forecast)));
  if (e.mode) p.push('mode ' + e.mode);
  if (e.hot_s !== undefined) p.push(`hot for ${e.hot_s} s`);
  if (e.total_ms !== undefined) p.push(`took ${e.total_ms} ms`);
  if (e.downtime_ms !== undefined) p.push(`downtime ${e.downtime_ms} ms`);
  if (e.why) p.push(e.why);
  const text = e.msg || e.reason;
  return p.join(', ') + (text ? (p.length ? ': ' : '') + text : '');
}

const events = {
  list: [], /* newest first */
  ids: new Set(),
  last: '', /* newest stream id seen */
  gen: 0,   /* bumped by start(): an older stream or poll loop ends */
  es: null,
  abort: null,

  add(evs) {
    let changed = false;
    for (const e of evs || []) {
      if (!e || !e.id || this.ids.has(e.id)) continue;
      this.ids.add(e.id);
      this.list.push(e);
      if (!this.last || idCmp(e.id, this.last) > 0) this.last = e.id;
      changed = true;
    }
    if (!changed) return;
    this.list.sort((a, b) => idCmp(b.id, a.id));
    for (const e of this.list.splice(EVENTS_MAX)) this.ids.delete(e.id);
    this.render();
  },

  render() {
    const items = this.list.map((e) => {
      const ts = e.ts !== undefined ? Number(e.ts) : Number(String(e.id).split('-')[0]);
      return el('li', {'data-id': e.id, 'data-type': e.type, title: JSON.stringify(e, null, 1)},
        el('time', {}, clock(ts)), ' ',
        el('span', {class: 'etype ' + (EVENT_CLASS[e.type] || '')}, e.type || '?'), ' ',
        el('span', {class: 'etext'}, eventSummary(e)));
    });
    document.getElementById('events-list').replaceChildren(...items);
  },

  setMode(text) {
    document.getElementById('events-mode').textContent = text;
  },

  /* (Re)starts: initial fill, then the stream or the long poll. */
  async start() {
    this.stop();
    const gen = this.gen;
    let refused = false;
    await api.run('events', async () => {
      try {
        const r = await api.get('/v1/events?count=50');
        this.add(r.events);
      } catch (e) {
        refused = e.status === 401;
        throw e;
      }
    });
    if (gen !== this.gen || refused) return; /* a new token restarts us */
    if (api.token || typeof EventSource === 'undefined') this.poll(gen);
    else this.stream(gen);
  },

  stop() {
    this.gen++;
    if (this.es) this.es.close();
    this.es = null;
    if (this.abort) this.abort.abort();
    this.abort = null;
  },

  stream(gen) {
    const es = new EventSource('/v1/events/stream');
    this.es = es;
    this.setMode('live');
    const onEvent = (m) => {
      let e;
      try {
        e = JSON.parse(m.data);
      } catch (err) {
        console.error('events: an entry that is not JSON:', m.data);
        return;
      }
      if (!e.id && m.lastEventId) e.id = m.lastEventId;
      if (!e.type && m.type !== 'message') e.type = m.type;
      this.add([e]);
    };
    for (const t of ['message', ...EVENT_TYPES]) es.addEventListener(t, onEvent);
    es.onopen = () => {
      banner.clear('events');
      this.catchUp(gen); /* what came between the fill (or a drop) and now */
    };
    es.onerror = () => {
      if (gen !== this.gen) return;
      if (es.readyState === EventSource.CLOSED) {
        /* refused (401, 404, not an event stream): long-poll instead */
        es.close();
        this.es = null;
        this.poll(gen);
      } else {
        banner.set('events', 'event stream lost (GET /v1/events/stream); reconnecting');
        this.setMode('reconnecting');
      }
    };
  },

  async catchUp(gen) {
    if (!this.last) return;
    this.setMode('live');
    await api.run('events', async () => {
      const r = await api.get('/v1/events?count=1000&after=' + encodeURIComponent(this.last));
      if (gen === this.gen) this.add(r.events);
    });
  },

  async poll(gen) {
    this.setMode('polling');
    while (gen === this.gen) {
      this.abort = new AbortController();
      const q = this.last ? 'after=' + encodeURIComponent(this.last) + '&wait=10' : 'count=50';
      try {
        const r = await api.get('/v1/events?' + q, this.abort.signal, 20000); /* wait=10 */
        if (gen !== this.gen) return;
        this.add(r.events);
        if (r.last && (!this.last || idCmp(r.last, this.last) > 0)) this.last = r.last;
        banner.clear('events');
        this.setMode('polling');
      } catch (e) {
        if (e.name === 'AbortError' || gen !== this.gen) return;
        banner.set('events', e.status === 401 ? 'the controller wants a bearer token (401)' : e.message);
        if (e.status === 401) return; /* a new token restarts us */
        this.setMode('retrying');
        await sleep(REFRESH_MS);
      }
    }
  },
};
