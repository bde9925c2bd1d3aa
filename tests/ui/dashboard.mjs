// dashboard.mjs - drives the LoadEase dashboard in headless Chromium
// (playwright-core + Debian's /usr/bin/chromium) for
// tests/component/test_dashboard.py, which starts Redis and the controller.
//
//   node tests/ui/dashboard.mjs --url http://127.0.0.1:PORT/ --hosts h0,h1,h2 \
//        --host h0 [--empty-host h2] [--vm vm1] [--token T] [--event MARKER] [--unreachable] \
//        [--screenshot FILE]
//
// Talks to its driver one JSON object a line on stdout. Before a step that
// needs the driver to act it prints {"ready": "<step>"} and waits for a line
// on stdin: "event" (the driver XADDs an entry whose msg is MARKER),
// "unreachable" (the driver stops the controller). Last comes
// {"result": {...}}, or {"error": "..."} and exit 1. Every wait is bounded.
import {chromium} from 'playwright-core';
import {createInterface} from 'node:readline';
import {parseArgs} from 'node:util';

const {values: opt} = parseArgs({
  options: {
    url: {type: 'string'},
    hosts: {type: 'string', default: ''},
    host: {type: 'string'},
    'empty-host': {type: 'string'},
    vm: {type: 'string'},
    token: {type: 'string'},
    event: {type: 'string'},
    unreachable: {type: 'boolean', default: false},
    screenshot: {type: 'string'},
    chromium: {type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium'},
    timeout: {type: 'string', default: '10000'},
  },
});
const TIMEOUT = Number(opt.timeout);

// Runs a wait; its failure names what was awaited and what the page showed.
let page = null;
async function waitFor(what, fn) {
  try {
    return await fn();
  } catch (e) {
    let seen = '';
    try {
      seen = await page.evaluate(() => ({
        banner: document.getElementById('banner').textContent,
        events: document.getElementById('events-mode').textContent,
        detail: document.getElementById('detail-note').textContent,
      }));
    } catch (e2) { /* the page is gone */ }
    throw new Error(`waiting for ${what}: ${e.message.split('\n')[0]}; page: ${JSON.stringify(seen)}`);
  }
}

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

const stdinLines = createInterface({input: process.stdin})[Symbol.asyncIterator]();
async function handOver(step) {
  say({ready: step});
  const {value, done} = await stdinLines.next();
  if (done || value.trim() !== step) throw new Error(`driver answered ${JSON.stringify(value)} to ${step}`);
}

// Pixels of the canvas within `tol` of the colour (#rrggbb): a chart that
// drew its line or bars has some.
async function colouredPixels(page, selector, hex, tol = 60) {
  return page.$eval(selector, (canvas, [hex, tol]) => {
    const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i + 3] > 128 && want.every((w, k) => Math.abs(data[i + k] - w) <= tol)) n++;
    }
    return n;
  }, [hex, tol]);
}

// Waits for the detail panel of kind/id to show a series with data and its
// histograms; returns what it shows.
async function detail(page, kind, id) {
  await waitFor(`the ${kind} ${id} charts with data`, () => page.waitForFunction(([kind, id]) => {
    const p = document.getElementById('detail');
    const s = document.getElementById('series-chart');
    const h = document.getElementById('hist-cpu');
    return !p.hidden && p.dataset.kind === kind && p.dataset.id === id &&
      s.querySelector('.uplot canvas') && Number(s.dataset.values) > 0 &&
      h.querySelector('.uplot canvas') && Number(h.dataset.n) > 0;
  }, [kind, id]));
  // one more frame so that the canvases are painted
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
  const d = await page.evaluate(() => {
    const s = document.getElementById('series-chart');
    const hist = {};
    for (const r of ['cpu', 'mem', 'net']) {
      const b = document.getElementById('hist-' + r);
      hist[r] = {canvas: Boolean(b.querySelector('.uplot canvas')), n: Number(b.dataset.n),
                 bins: Number(b.dataset.bins)};
    }
    return {
      title: document.getElementById('detail-title').textContent,
      canvas: Boolean(s.querySelector('.uplot canvas')),
      points: Number(s.dataset.points), values: Number(s.dataset.values),
      legend: [...s.querySelectorAll('.u-legend .u-label')].map((l) => l.textContent),
      hist,
    };
  });
  d.cpuPixels = await colouredPixels(page, '#series-chart .uplot canvas', '#d9480f');
  d.histPixels = await colouredPixels(page, '#hist-cpu .uplot canvas', '#d9480f');
  return d;
}

async function main() {
  const result = {consoleErrors: [], pageErrors: []};
  let phase = 'load';
  const browser = await chromium.launch({
    executablePath: opt.chromium,
    headless: true,
    args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
    timeout: TIMEOUT,
  });
  try {
    page = await browser.newPage({viewport: {width: 1400, height: 1000}});
    page.setDefaultTimeout(TIMEOUT);
    page.on('console', (m) => {
      if (m.type() === 'error') result.consoleErrors.push({phase, text: m.text()});
    });
    page.on('pageerror', (e) => result.pageErrors.push({phase, text: String(e)}));
    await page.goto(opt.url, {waitUntil: 'load'});

    if (opt.token) {
      phase = 'token';
      await waitFor('the token form', () => page.waitForSelector('#token-form:not([hidden])'));
      result.tokenFormShown = true;
      await page.fill('#token-input', opt.token);
      await page.click('#token-form button[type=submit]');
      phase = 'authorised';
    }

    const want = opt.hosts ? opt.hosts.split(',') : [];
    await waitFor(`hosts ${want} in the table`, () => page.waitForFunction((want) => {
      const ids = [...document.querySelectorAll('#hosts-body tr[data-id]')].map((r) => r.dataset.id);
      return want.every((h) => ids.includes(h));
    }, want));
    result.hosts = await page.$$eval('#hosts-body tr[data-id]', (rows) => rows.map((r) => ({
      id: r.dataset.id, state: r.dataset.state, text: r.textContent,
      hotBars: r.querySelectorAll('.bar.hot').length,
      badges: [...r.querySelectorAll('.badge')].map((b) => b.textContent),
    })));
    result.summary = await page.$eval('#summary', (n) => n.textContent.replace(/\s+/g, ' '));
    result.vms = await page.$$eval('#vms-body tr[data-id]', (rows) => rows.map((r) => r.dataset.id));

    if (opt.host) {
      await page.click(`#hosts-body tr[data-id="${opt.host}"]`);
      result.hostDetail = await detail(page, 'host', opt.host);
    }
    if (opt['empty-host']) {
      // a host without samples yet: empty charts and a note, no error
      const id = opt['empty-host'];
      await page.click(`#hosts-body tr[data-id="${id}"]`);
      await waitFor(`the empty charts of ${id}`, () => page.waitForFunction((id) =>
        document.getElementById('detail').dataset.id === id &&
        document.getElementById('series-chart').dataset.points !== undefined &&
        document.getElementById('hist-cpu').dataset.n !== undefined, id));
      result.emptyDetail = await page.evaluate(() => ({
        note: document.getElementById('detail-note').textContent,
        canvas: Boolean(document.querySelector('#series-chart .uplot canvas')),
        points: Number(document.getElementById('series-chart').dataset.points),
        histN: Number(document.getElementById('hist-cpu').dataset.n),
      }));
    }
    if (opt.vm) {
      await waitFor(`VM ${opt.vm} in the table`,
                    () => page.waitForSelector(`#vms-body tr[data-id="${opt.vm}"]`));
      await page.click(`#vms-body tr[data-id="${opt.vm}"]`);
      result.vmDetail = await detail(page, 'vm', opt.vm);
    }
    result.plan = await page.$eval('#plan', (n) => n.textContent.replace(/\s+/g, ' '));
    result.eventsMode = await page.$eval('#events-mode', (n) => n.textContent);
    result.banner = await page.$eval('#banner', (n) => (n.hidden ? '' : n.textContent));

    if (opt.event) {
      await handOver('event');
      const t0 = Date.now();
      await waitFor('the event in the events panel', () => page.waitForFunction((m) =>
        [...document.querySelectorAll('#events-list li')].some((li) => li.textContent.includes(m)),
        opt.event));
      result.eventMs = Date.now() - t0;
      result.eventFirst = await page.$eval('#events-list li', (li) => li.textContent);
      result.eventsMode = await page.$eval('#events-mode', (n) => n.textContent);
    }
    if (opt.screenshot) await page.screenshot({path: opt.screenshot, fullPage: true});

    if (opt.unreachable) {
      phase = 'unreachable'; /* the page may notice before we are told */
      await handOver('unreachable');
      await waitFor('the error banner', () => page.waitForSelector('#banner:not([hidden])'));
      result.unreachableBanner = await page.$eval('#banner', (n) => n.textContent);
    }
    say({result});
  } finally {
    await browser.close();
  }
}

main().then(() => process.exit(0), (e) => {
  say({error: String(e && e.stack || e)});
  process.exit(1);
});
