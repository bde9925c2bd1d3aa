/* lib.js - what every part of the dashboard shares: building DOM nodes,
 * formatting, GET calls to the controller (bearer token, errors), the error
 * banner and the token form.
 *
 * The dashboard is plain scripts loaded in order (lib, charts, events, app);
 * each defines top-level functions the later ones use. */
'use strict';

const REFRESH_MS = 2000;
const TOKEN_KEY = 'loadease.token';

/* el('td', {class: 'x', title: 't'}, 'text', node, ...): a new element. */
function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k.startsWith('on')) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    n.append(c instanceof Node ? c : String(c));
  }
  return n;
}

function isNum(v) {
  return typeof v === 'number' && Number.isFinite(v);
}

/* 0.813 -> "81%"; null -> "–" */
function pct(v) {
  return isNum(v) ? Math.round(v * 100) + '%' : '–';
}

function num(v, digits = 1) {
  return isNum(v) ? v.toFixed(digits) : '–';
}

function clock(ms) {
  return isNum(ms) ? new Date(ms).toLocaleTimeString([], {hour12: false}) : '–';
}

/* ------------------------------------------------------------------ banner */

/* One line per failing part of the page ("hosts", "plan", ...), removed
 * when that part works again. */
const banner = {
  errors: new Map(),
  set(part, msg) {
    this.errors.set(part, msg);
    this.render();
  },
  clear(part) {
    if (this.errors.delete(part)) this.render();
  },
  render() {
    const box = document.getElementById('banner');
    const lines = [...new Set(this.errors.values())];
    box.replaceChildren(...lines.map((l) => el('div', {}, l)));
    box.hidden = lines.length === 0;
  },
};

/* --------------------------------------------------------------------- api */

class ApiError extends Error {
  /* status 0: no answer at all (controller unreachable). */
  constructor(path, status, code, message) {
    super(status ? `GET ${path}: ${status} ${code}: ${message}`
                 : `controller unreachable (${message}); retrying every ${REFRESH_MS / 1000} s`);
    this.path = path;
    this.status = status;
    this.code = code;
  }
}

const api = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',

  headers() {
    const h = {Accept: 'application/json'};
    if (this.token) h.Authorization = 'Bearer ' + this.token;
    return h;
  },

  /* The parsed JSON answer; throws ApiError, or the caller's abort. A 401
   * also opens the token form. A controller that accepts the connection but
   * does not answer within timeoutMs counts as unreachable. */
  async get(path, signal, timeoutMs = 8000) {
    const timeout = AbortSignal.timeout(timeoutMs);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let r;
    try {
      r = await fetch(path, {headers: this.headers(), cache: 'no-store', signal: both});
    } catch (e) {
      if (signal && signal.aborted) throw e;
      throw new ApiError(path, 0, 'unreachable',
                         timeout.aborted ? `no answer within ${timeoutMs / 1000} s` : e.message);
    }
    let body = null;
    try {
      body = await r.json();
    } catch (e) {
      /* not JSON: reported below */
    }
    if (!r.ok) {
      const err = (body && body.error) || {};
      if (r.status === 401) tokenForm.show();
      throw new ApiError(path, r.status, err.code || 'http_error', err.message || r.statusText);
    }
    if (body === null) throw new ApiError(path, r.status, 'bad_answer', 'the answer is not JSON');
    return body;
  },

  /* Runs fn (an async function of api calls) for one part of the page, and
   * puts its failure in the banner under that part's name. */
  async run(part, fn) {
    try {
      await fn();
      banner.clear(part);
    } catch (e) {
      if (e.name === 'AbortError') return;
      const msg = e instanceof ApiError ? e.message : `${part}: ${e.message}`;
      banner.set(part, e.status === 401 ? 'the controller wants a bearer token (401)' : msg);
      if (!(e instanceof ApiError)) console.error(part, e); /* a bug of the page's */
    }
  },
};

/* ------------------------------------------------------------- token form */

const tokenForm = {
  listeners: [],
  /* fn() runs after the token changed */
  onChange(fn) {
    this.listeners.push(fn);
  },
  show() {
    const f = document.getElementById('token-form');
    if (!f.hidden) return;
    f.hidden = false;
    document.getElementById('token-input').focus();
  },
  set(token) {
    api.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById('token-form').hidden = Boolean(token);
    document.getElementById('token-button').classList.toggle('set', Boolean(token));
    for (const fn of this.listeners) fn();
  },
  init() {
    const f = document.getElementById('token-form');
    const input = document.getElementById('token-input');
    f.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.set(input.value.trim());
      input.value = '';
    });
    document.getElementById('token-clear').addEventListener('click', () => {
      input.value = '';
      this.set('');
    });
    const button = document.getElementById('token-button');
    button.classList.toggle('set', Boolean(api.token));
    button.addEventListener('click', () => {
      f.hidden = !f.hidden;
      if (!f.hidden) input.focus();
    });
  },
};
