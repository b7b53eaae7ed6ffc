// The page in a real browser (Debian's chromium, headless, driven by playwright-core), against
// the real haulwatch web, daemon, PostgreSQL and Redis that tests/integration/test_page.c set up.
// Exits 0 only when every check held; prints what failed otherwise. Checked:
//   - the login form, then the simulated vehicles drawn on the map (rendered features summed
//     over clusters and points, equal to the API's count; pixels of vehicle colours on the
//     WebGL canvas, so the map really draws);
//   - a violation made by a scripted truck appearing in the feed live (over SSE: the page is
//     not reloaded), and a converted tractor that moved after its phase-out date in its panel,
//     its hostile plate shown as text;
//   - an operator moving that violation to closed with a note, and the API then showing it
//     closed with three audit rows by that operator;
//   - the crackdown panel: the tractor in the phase-out list (plate as text), another tab and its
//     CSV export;
//   - the feed's filters (state, kind, region);
//   - the KPI panel: every cell of its table is the API's figure for the panel's own query
//     (GET /api/v1/kpi), each rate's trend line has a point per day the API gives a value for
//     (GET /api/v1/kpi/daily), and changing the region asks again;
//   - answers out of order (one held back by the test): the KPI panel and the feed show what
//     was asked for last, not an older answer that came in later;
//   - logging out while a request is out: it is let finish, not answered 401;
//   - a viewer getting no lifecycle buttons;
//   - an active-safety alarm of a JT/T 808 DSM truck (haulwatch-sim) with its files: the daemon
//     asked for them (0x9208), the sim uploaded, and the page shows the photo (decoded) and the
//     clip as a player;
//   - no console error and no uncaught exception, before or after login; no request leaving
//     the host (every request recorded; any other host aborted and counted);
//   - two screenshots saved for a person to look at (the overview; a vehicle as a viewer).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const E = process.env;
for (const k of ['HW_PAGE_URL', 'HW_SIM_BINARY', 'HW_DAEMON', 'HW_JT808', 'HW_PG', 'HW_SCREENSHOT', 'HW_OPERATOR', 'HW_VIEWER', 'HW_PASSWORD'])
  if (!E[k]) { console.error(`page_test: ${k} is not set (run through test_page)`); process.exit(2); }
const base = E.HW_PAGE_URL;
const host = new URL(base).host;
const t0 = Date.now();
const log = (...a) => console.log(`page_test: [${((Date.now() - t0) / 1000).toFixed(1)} s]`, ...a);

const consoleErrors = [];
const outside = [];
const sims = [];
let failed = false;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  log(`ok: ${what}`);
}

async function until(what, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}

function startSim(scenario, jt808) {
  const args = jt808
    ? ['--protocol', 'jt808', '--server', E.HW_JT808, '--scenario', scenario, '--trucks', '1', '--pg', E.HW_PG, '--quiet']
    : ['--server', E.HW_DAEMON, '--scenario', scenario, '--id-prefix', 'pg', '--pg', E.HW_PG, '--quiet'];
  const p = spawn(E.HW_SIM_BINARY, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const done = new Promise((resolve) => p.on('exit', (code) => resolve(code)));
  sims.push({ p, done, scenario });
  return done;
}

const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hw-chromium-'));
const ctx = await chromium.launchPersistentContext(userDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-angle=swiftshader', '--enable-unsafe-swiftshader'],
});

try {
  // Every request is seen; one for another host is recorded and never leaves.
  ctx.on('request', (req) => {
    const u = new URL(req.url());
    if (/^(https?|wss?):$/.test(u.protocol) && u.host !== host) outside.push(req.url());
  });
  await ctx.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (/^(https?|wss?):$/.test(u.protocol) && u.host !== host) return route.abort();
    return route.continue();
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(`console: ${m.text()} (${JSON.stringify(m.location())})`); });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => { consoleErrors.push(`dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
  // A request of its own host that failed, except those the page ended itself (the live feed
  // closed at logout: net::ERR_ABORTED); those for other hosts are counted apart.
  page.on('requestfailed', (r) => {
    const u = new URL(r.url());
    const why = r.failure()?.errorText;
    if (u.host === host && why !== 'net::ERR_ABORTED') consoleErrors.push(`request failed: ${r.url()} ${why}`);
  });

  // --- before login ---
  await page.goto(`${base}/`);
  await page.waitForSelector('#login-form', { state: 'visible', timeout: 15000 });
  check(await page.title() === 'haulwatch 监控中心', 'the page loads with its title, showing the login form');
  const fav = await page.evaluate(async () => { const l = document.querySelector('link[rel=icon]'); const r = await fetch(l.href); return `${r.status} ${r.headers.get('content-type')}`; });
  check(fav === '200 image/svg+xml', `a favicon is linked and served (${fav})`);
  await page.waitForTimeout(500);
  check(consoleErrors.length === 0, `no console error before login (${consoleErrors.join(' | ')})`);

  // --- the operator ---
  async function login(user) {
    await page.fill('#login-user', user);
    await page.fill('#login-password', E.HW_PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('body[data-ready="1"]', { timeout: 20000 });
  }
  await login(E.HW_OPERATOR);
  check((await page.textContent('#who-name')) === E.HW_OPERATOR && (await page.textContent('#who-role')) === 'operator',
    'logged in: the header shows the user and the role');

  // The API's count of vehicles with a position, for this user.
  const apiCount = () => page.evaluate(async () => {
    let n = 0; let c = null;
    do {
      const r = await (await fetch(`/api/v1/vehicles?limit=1000${c ? `&cursor=${c}` : ''}`)).json();
      n += r.items.filter((x) => x.lat !== null).length;
      c = r.next_cursor;
    } while (c);
    return n;
  });
  const want = Number(E.HW_EXPECT_VEHICLES || 1);
  const n = await until('the simulated vehicles on the map', async () => {
    const a = await apiCount();
    const drawn = await page.evaluate(() => window.haulwatch.renderedVehicleCount());
    return a >= want && drawn === a ? a : 0;
  }, 30000);
  check(n >= want, `${n} vehicles drawn on the map (clusters and points summed), as many as the API lists with a position`);
  // The WebGL canvas really draws them: pixels of the vehicles' and clusters' colours.
  const coloured = await page.evaluate(() => {
    const src = window.haulwatch.page.map.getCanvas();
    const c = document.createElement('canvas');
    c.width = src.width; c.height = src.height;
    const g = c.getContext('2d');
    g.drawImage(src, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    const want = [[0x5b, 0x8d, 0xef], [0x2e, 0x9e, 0x44], [0xe0, 0xa4, 0x00], [0xd9, 0x30, 0x25], [0x8a, 0x8f, 0x98], [0xf2, 0x8b, 0x82]];
    let hits = 0;
    for (let i = 0; i < d.length; i += 4) {
      for (const w of want) {
        if (Math.abs(d[i] - w[0]) + Math.abs(d[i + 1] - w[1]) + Math.abs(d[i + 2] - w[2]) < 60) { hits++; break; }
      }
    }
    return hits;
  });
  check(coloured > 200, `the map canvas shows vehicles (${coloured} pixels of their colours)`);
  fs.mkdirSync(path.dirname(E.HW_SCREENSHOT), { recursive: true });
  await page.screenshot({ path: E.HW_SCREENSHOT });
  log(`screenshot of the overview: ${E.HW_SCREENSHOT}`);
  const regionsDrawn = await page.evaluate(() => window.haulwatch.page.map.querySourceFeatures('regions').length);
  check(regionsDrawn > 0, `region outlines drawn without a background map (${regionsDrawn} features)`);
  const zonesDrawn = await page.evaluate(() => window.haulwatch.page.map.querySourceFeatures('zones').length);
  check(zonesDrawn > 0, `zones drawn (${zonesDrawn} features)`);

  // --- the KPI panel: the numbers the API gives ---
  async function checkKpi(what) {
    await page.waitForSelector('#kpi-panel[data-loaded] #kpi-table tbody tr', { timeout: 10000 });
    const got = await page.evaluate(async () => {
      const q = document.getElementById('kpi-panel').dataset.query;
      const rows = (await (await fetch(`/api/v1/kpi?${q}`)).json()).items;
      const daily = (await (await fetch(`/api/v1/kpi/daily?${q}`)).json()).items;
      const shown = [...document.querySelectorAll('#kpi-table tbody tr')].map((tr) =>
        Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.field, td.textContent])));
      const points = Object.fromEntries([...document.querySelectorAll('#kpi-trend path[data-field]')].map((p) =>
        [p.dataset.field, (p.getAttribute('d').match(/[ML]/g) || []).length]));
      return { q, rows, daily, shown, points };
    });
    const rate = (x) => (x === null ? '–' : `${(x * 100).toFixed(2)} %`);
    const num = (x, d) => (x === null ? '–' : x.toFixed(d));
    const want = got.rows.map((r) => ({
      group: r.group, vehicles_online: num(r.vehicles_online, 0), rate_connected: rate(r.rate_connected),
      rate_online: rate(r.rate_online), rate_track_complete: rate(r.rate_track_complete),
      rate_qualified: rate(r.rate_qualified), rate_drifting: rate(r.rate_drifting),
      speeding_per_vehicle: num(r.speeding_per_vehicle, 2), fatigue_hours_per_vehicle: num(r.fatigue_hours_per_vehicle, 2),
      score: num(r.score, 2),
    }));
    check(got.rows.length > 0 && JSON.stringify(got.shown) === JSON.stringify(want),
      `${what}: the KPI table shows the API's figures (${got.q}: ${JSON.stringify(got.shown)})`);
    for (const f of ['rate_online', 'rate_track_complete', 'rate_qualified', 'rate_drifting']) {
      const n = got.daily.filter((d) => d[f] !== null).length;
      check(got.points[f] === Math.max(n, 1) || (n === 0 && got.points[f] === 1),
        `${what}: the ${f} trend line has a point per day with a value (${got.points[f]} for ${n} of ${got.daily.length} days)`);
    }
    return got;
  }
  // The panel opens on the last seven days; today's figures move while the daemon writes them,
  // so the comparison is made on the six days before (seeded by test_page.c), which do not.
  await page.waitForSelector('#kpi-panel[data-loaded]', { timeout: 10000 });
  const days = await page.evaluate(() => [document.getElementById('kpi-from').value, document.getElementById('kpi-to').value]);
  const dayMs = (d) => Date.parse(`${d}T00:00:00Z`);
  const dayStr = (ms) => new Date(ms).toISOString().slice(0, 10);
  check(dayMs(days[1]) - dayMs(days[0]) === 6 * 86400e3, `the panel opens on seven days (${days.join(' .. ')})`);
  async function setPeriod(from, to) {
    await page.evaluate(() => { document.getElementById('kpi-panel').removeAttribute('data-loaded'); });
    await page.fill('#kpi-from', from);
    await page.dispatchEvent('#kpi-from', 'change');
    await page.waitForSelector('#kpi-panel[data-loaded]', { timeout: 10000 });
    await page.evaluate(() => { document.getElementById('kpi-panel').removeAttribute('data-loaded'); });
    await page.fill('#kpi-to', to);
    await page.dispatchEvent('#kpi-to', 'change');
  }
  const yesterday = dayStr(dayMs(days[1]) - 86400e3);
  await setPeriod(dayStr(dayMs(days[1]) - 6 * 86400e3), yesterday);
  const k1 = await checkKpi('the operator\'s province, six days');
  check(k1.q.includes(`to=${yesterday}`), `the panel shows the period last asked for (${k1.q})`);
  check(k1.daily.length === 6 && k1.daily.every((d) => d.records > 0), `six days of trend, each with records (${k1.daily.map((d) => d.records).join(' ')})`);
  check(k1.rows.some((r) => r.score !== null && r.score > 0), `a score shown (${k1.rows.map((r) => `${r.group} ${r.score}`).join(', ')})`);
  await setPeriod(k1.daily[3].day, yesterday);
  const k2 = await checkKpi('three days');
  check(k2.daily.length === 3 && k2.q.includes(`from=${k1.daily[3].day}`), `the panel asked again for three days (${k2.q})`);
  // Answers out of order: the answer for an older choice of period, held back, arrives after the
  // newer one's and must not replace it (a user changing the period twice quickly).
  const olderFrom = k1.daily[0].day, newerFrom = k1.daily[4].day;
  await page.route(/\/api\/v1\/kpi/, async (route) => {
    if (route.request().url().includes(`from=${olderFrom}`)) await new Promise((r) => setTimeout(r, 1500));
    await route.continue();
  });
  await page.evaluate(([a, b]) => {
    const panel = document.getElementById('kpi-panel');
    const from = document.getElementById('kpi-from');
    panel.removeAttribute('data-loaded');
    from.value = a;
    from.dispatchEvent(new Event('change'));
    from.value = b;
    from.dispatchEvent(new Event('change'));
  }, [olderFrom, newerFrom]);
  await page.waitForSelector('#kpi-panel[data-loaded]', { timeout: 10000 });
  await new Promise((r) => setTimeout(r, 2500)); // the held-back answer has come in by now
  await page.unroute(/\/api\/v1\/kpi/);
  const k3 = await checkKpi('two quick changes');
  check(k3.q.includes(`from=${newerFrom}`) && k3.daily.length === 2,
    `the panel shows the last period asked for, not the older answer that came in later (${k3.q})`);

  // --- a scripted speeder and a converted tractor, live ---
  await page.evaluate(() => {
    window.__notReloaded = true;
    // the speeder's positions as the live feed's batches bring them (README, Live feed)
    window.__speederLive = [];
    window.haulwatch.page.stream.addEventListener('positions', (ev) => {
      for (const p of JSON.parse(ev.data)) if (p[0] === 'pg-speeder-001') window.__speederLive.push(p);
    });
  });
  const tSim = Date.now();
  // A JT/T 808 truck with a DSM device (013950000001, in the users' province): its two alarms are
  // answered with 0x9208 and it uploads a photo and a clip to the attachment listener; the sim
  // exits 0 once every fix is acknowledged and its uploads are done. Looked at as the viewer.
  const dsm = startSim('dsm', true);
  const speeder = startSim('speeder');
  const tractor = startSim('tractor');
  const item = await until('the speeder\'s violation in the live feed', async () => {
    const h = await page.$('#feed li[data-terminal="pg-speeder-001"]');
    return h && (await h.textContent()).includes('speeding') ? h : null;
  }, 30000);
  const vid = await item.getAttribute('data-id');
  check(await page.evaluate(() => window.__notReloaded === true), `violation #${vid} of pg-speeder-001 in the feed ${((Date.now() - tSim) / 1000).toFixed(1)} s after the sim started, without a reload`);
  check((await speeder) === 0 && (await tractor) === 0, 'both scripted trucks delivered every fix (sim exit 0)');
  // The live feed moved the speeder on the map: its newest position there, from `positions`
  // batches, becomes the one the API reads from Redis after the sim's last fix.
  const live = await until('the speeder\'s last position on the page, from the live feed', async () => page.evaluate(async () => {
    let cursor = null, row = null;
    do {
      const a = await (await fetch(`/api/v1/vehicles?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)).json();
      row = row || a.items.find((r) => r.terminal_id === 'pg-speeder-001');
      cursor = a.next_cursor;
    } while (cursor);
    const v = window.haulwatch.page.vehicles.get('pg-speeder-001');
    const got = window.__speederLive[window.__speederLive.length - 1];
    if (!row || !v || !got || Date.parse(v.ts) !== Date.parse(row.ts)) return null;
    return { n: window.__speederLive.length, ok: got[1] === Date.parse(row.ts) && got[2] === row.lat && got[3] === row.lon && v.lat === row.lat && v.lon === row.lon && v.speed === row.speed_kmh };
  }), 15000);
  check(live.ok, `the speeder moved on the page by ${live.n} live positions, the last one the API's (ts, lat, lon, speed)`);
  const row = await until('the converted tractor marked as moving after its phase-out', async () => {
    const h = await page.$('#tractors tr.moved[data-terminal="pg-tractor-001"]');
    return h || null;
  }, 30000);
  // The fixes stored today: the header's count, refreshed after the violation, is the API's
  // (the daemon flushes its daily figures every 2 s here), and both are more than none.
  await until('the fixes stored today in the header', async () => {
    const shown = Number((await page.textContent('#c-fixes')).replace(/,/g, ''));
    const api = await page.evaluate(async () => (await (await fetch('/api/v1/summary')).json()).fixes_today);
    return shown > 0 && shown <= api ? shown : null;
  }, 40000);
  log('ok: the header counts the fixes stored today');
  const rowText = await row.textContent();
  check(rowText.includes('<img src=x onerror=alert(1)>') && rowText.includes('是 yes'), `the tractor panel lists it, its hostile plate shown as text (${rowText})`);

  // --- the crackdown lists: the tractor in the phase-out tab, its plate as text; another tab ---
  const cdRow = await until('the converted tractor in the crackdown phase-out list', async () => {
    const h = await page.$('#cd-table tr[data-list="phaseout"][data-terminal="pg-tractor-001"]');
    return h || null;
  }, 10000);
  const cdText = await cdRow.textContent();
  check(cdText.includes('<img src=x onerror=alert(1)>'), `the phase-out list shows its hostile plate as text (${cdText})`);
  check((await page.getAttribute('#cd-csv', 'href')) === '/api/v1/crackdown/phaseout?format=csv', 'the phase-out CSV export link');
  await page.click('#cd-tabs button[data-list="offline-movers"]');
  await page.waitForFunction(() => document.getElementById('cd-xlsx').getAttribute('href') === '/api/v1/crackdown/offline-movers?format=xlsx'
    && document.querySelector('#cd-table thead th').textContent.includes('enterprise'), null, { timeout: 10000 });
  const exp = await page.evaluate(async () => {
    const r = await fetch(document.getElementById('cd-csv').getAttribute('href'));
    return { status: r.status, type: r.headers.get('content-type'), head: (await r.text()).split('\r\n')[0] };
  });
  check(exp.status === 200 && exp.type.startsWith('text/csv') && exp.head.startsWith('enterprise,plate,terminal_id'),
    `the offline-movers tab and its CSV export (${exp.status} ${exp.type} ${exp.head})`);
  await page.click('#cd-tabs button[data-list="phaseout"]');

  // --- the operator closes the violation ---
  await page.click(`#feed li[data-id="${vid}"]`);
  for (const to of ['notified', 'rectifying', 'closed']) {
    // a locator, found again at each try: live events redraw the panel
    const b = page.locator(`#vio-buttons button[data-to="${to}"]`);
    await b.waitFor({ timeout: 10000 });
    if (to === 'closed') await page.fill('#vio-note', 'page test: driver warned, fined 200 yuan');
    await b.click({ timeout: 10000 });
  }
  await page.waitForFunction(() => document.getElementById('vio-facts').textContent.includes('closed') && document.getElementById('vio-buttons').childElementCount === 0, null, { timeout: 10000 });
  const v = await page.evaluate(async (id) => (await fetch(`/api/v1/violations/${id}`)).json(), vid);
  check(v.state === 'closed' && v.close_note === 'page test: driver warned, fined 200 yuan' && v.closed_by === E.HW_OPERATOR,
    `the API shows #${vid} closed by ${v.closed_by} with the note`);
  check(v.audit.length === 3 && v.audit.every((a) => a.actor === E.HW_OPERATOR) && v.audit[2].to === 'closed',
    `three audit rows by the operator (${v.audit.map((a) => `${a.from}->${a.to}`).join(', ')})`);
  await until('the feed showing it closed (live)', async () => {
    const h = await page.$(`#feed li[data-id="${vid}"] .badge.closed`);
    return h || null;
  }, 10000);
  log('ok: the feed shows it closed');
  // The feed's filters ask the API again: closed only, then a kind, then a region outside.
  await page.selectOption('#f-state', 'closed');
  await page.waitForFunction((id) => {
    const items = [...document.querySelectorAll('#feed li')];
    return items.length > 0 && items.some((li) => li.dataset.id === id) && items.every((li) => li.querySelector('.badge.closed'));
  }, vid, { timeout: 10000 });
  log('ok: filtered by state closed, the feed holds it and only closed ones');
  await page.selectOption('#f-state', '');
  await page.selectOption('#f-kind', 'speeding');
  await page.waitForFunction(() => {
    const items = [...document.querySelectorAll('#feed li .kind')];
    return items.length > 0 && items.every((k) => k.textContent.endsWith(' speeding'));
  }, null, { timeout: 10000 });
  log('ok: filtered by kind speeding, only speeding');
  await page.selectOption('#f-kind', '');
  await page.fill('#f-region', '320100');
  await page.dispatchEvent('#f-region', 'change');
  await page.waitForFunction(() => document.querySelectorAll('#feed li').length === 0, null, { timeout: 10000 });
  log('ok: filtered by a region outside the user\'s, nothing');
  await page.fill('#f-region', '');
  await page.dispatchEvent('#f-region', 'change');
  await page.waitForSelector(`#feed li[data-id="${vid}"]`, { timeout: 10000 });
  // Answers out of order: the unfiltered answer, held back, comes in after the answer for a region
  // outside the user's and must not replace it.
  const heldFeed = (url) => url.href.includes('/api/v1/violations?limit=200') && !url.href.includes('region=');
  await page.route(heldFeed, async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue();
  });
  await page.evaluate(() => {
    const region = document.getElementById('f-region');
    region.value = '';
    region.dispatchEvent(new Event('change'));
    region.value = '320100';
    region.dispatchEvent(new Event('change'));
  });
  await new Promise((r) => setTimeout(r, 2500)); // the held-back answer has come in by now
  await page.unroute(heldFeed);
  const feedShown = await page.evaluate(() => document.querySelectorAll('#feed li').length);
  check(feedShown === 0, `the feed shows the last filter asked for, not the older answer that came in later (${feedShown} items)`);
  await page.fill('#f-region', '');
  await page.dispatchEvent('#f-region', 'change');
  await page.waitForSelector(`#feed li[data-id="${vid}"]`, { timeout: 10000 });

  // --- a viewer ---
  // Logging out while a request is out (a feed load, held back 1 s): the page lets it finish
  // before it ends the session, so it is not answered 401 (an error on the console, and the login
  // form saying the session ended).
  await page.route(heldFeed, async (route) => {
    await new Promise((r) => setTimeout(r, 1000));
    await route.continue();
  });
  const heldAnswer = page.waitForResponse((r) => heldFeed(new URL(r.url())), { timeout: 10000 });
  await page.evaluate(() => document.getElementById('f-region').dispatchEvent(new Event('change')));
  await page.click('#logout');
  const heldStatus = (await heldAnswer).status();
  await page.waitForSelector('#login-form', { state: 'visible', timeout: 10000 });
  await page.unroute(heldFeed);
  const loginSays = await page.textContent('#login-error');
  check(heldStatus === 200 && loginSays === '',
    `logging out with a request out: it was answered ${heldStatus} (401 would be the session ended under it), the form says nothing ("${loginSays}")`);
  await login(E.HW_VIEWER);
  check((await page.textContent('#who-role')) === 'viewer', 'logged in again as a viewer');
  await page.waitForSelector('#feed li', { timeout: 10000 });
  await page.click(`#feed li[data-id="${vid}"]`);
  await page.waitForSelector('#violation-panel:not([hidden]) #vio-facts dt', { timeout: 10000 });
  let buttons = await page.$$eval('button[data-to]', (b) => b.length);
  check(buttons === 0 && await page.$eval('#vio-actions', (e) => e.hidden), 'the viewer has no lifecycle buttons (a closed violation)');
  // and none on one still open either, whoever's it is
  const openId = await page.evaluate(async () => {
    const r = await (await fetch('/api/v1/violations?state=open&limit=1')).json();
    return r.items.length ? r.items[0].id : null;
  });
  if (openId !== null) {
    await page.evaluate((id) => window.haulwatch.openViolation(id), openId);
    await page.waitForFunction((id) => document.getElementById('vio-title').textContent === `#${id}`, openId, { timeout: 10000 });
    buttons = await page.$$eval('button[data-to]', (b) => b.length);
    check(buttons === 0 && await page.$eval('#vio-actions', (e) => e.hidden), `nor on open violation #${openId}`);
  }
  // An alarm with its files: the DSM truck's alarms in the alarms panel; a click lists the
  // files, the photo is displayed (decoded: naturalWidth > 0) and the clip is a player.
  check((await dsm) === 0, 'the DSM truck delivered every fix and finished its uploads (sim exit 0)');
  const alarmRow = '#alarms tr[data-terminal="013950000001"]';
  await page.waitForSelector(alarmRow, { timeout: 10000 });
  check((await page.$$(alarmRow)).length === 2, 'both alarms of the DSM truck in the alarms panel');
  await page.click(`${alarmRow} >> nth=0`);
  await page.waitForSelector('#alarm-files:not([hidden]) .alarm-file img', { timeout: 10000 });
  const photo = await page.waitForFunction(() => {
    const i = document.querySelector('#alarm-files .alarm-file img');
    return i && i.complete && i.naturalWidth > 0 ? i.naturalWidth : 0;
  }, null, { timeout: 10000 });
  check(await photo.jsonValue() > 0, `the alarm's photo is displayed (naturalWidth ${await photo.jsonValue()})`);
  const clip = await page.$$eval('#alarm-files .alarm-file video[controls]', (v) => v.map((x) => new URL(x.src).pathname));
  check(clip.length === 1 && /^\/api\/v1\/attachments\/\d+$/.test(clip[0]), `the alarm's clip is a player (${clip.join(' ')})`);

  // the vehicle panel with its track, for the screenshot
  await page.click('#tractors tr[data-terminal="pg-tractor-001"]');
  await page.waitForFunction(() => !document.getElementById('replay-slider').disabled, null, { timeout: 10000 });
  const replay = await page.textContent('#replay-info');
  check(/km\/h/.test(replay), `the vehicle panel replays its track (${replay})`);
  await page.waitForTimeout(1500);
  const second = E.HW_SCREENSHOT.replace(/\.png$/, '-vehicle.png');
  await page.screenshot({ path: second });
  log(`screenshot of a vehicle and a violation as a viewer: ${second}`);

  check(consoleErrors.length === 0, `no console error, uncaught exception or dialog (${consoleErrors.join(' | ')})`);
  check(outside.length === 0, `no request left the host (${outside.join(' ')})`);
} catch (e) {
  failed = true;
  console.error(`page_test: FAILED: ${e.message}`);
  if (consoleErrors.length) console.error(`page_test: console errors: ${consoleErrors.join(' | ')}`);
  if (outside.length) console.error(`page_test: requests for other hosts: ${outside.join(' ')}`);
  try {
    const p = ctx.pages()[0];
    if (p) await p.screenshot({ path: E.HW_SCREENSHOT.replace(/\.png$/, '-failed.png') });
  } catch { /* nothing more to show */ }
} finally {
  for (const s of sims) if (s.p.exitCode === null) s.p.kill('SIGTERM');
  await ctx.close();
  fs.rmSync(userDir, { recursive: true, force: true });
}
log(failed ? 'FAILED' : 'passed');
process.exit(failed ? 1 : 0);
