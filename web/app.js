// The monitoring centre's page: one screen a duty officer keeps open all day.
// Talks only to its own host (the API of haulwatch web, README "The page"): no CDN, no fonts,
// no glyphs or sprites (the map has no symbol layers, so it needs none). Every value from the
// API is shown with textContent, never as HTML: plates and enterprise names are hostile input.
/* global maplibregl */

const $ = (id) => document.getElementById(id);

const KIND_ZH = {
  speeding: '超速', fatigue_continuous: '疲劳驾驶', fatigue_daily: '日累计超时', night_driving: '夜间驾驶',
  night_speeding: '夜间超速', retired_class: '淘汰车型上路', deregistered_vehicle: '注销车辆上路',
  expired_permit: '证件过期', restricted_zone: '闯禁行区', offline_displacement: '离线位移',
  unregistered_terminal: '未登记终端',
};
const STATE_ZH = { open: '待处理', notified: '已通知', rectifying: '整改中', closed: '已销号' };
const STEP = { notified: '通知 Notify', rectifying: '整改 Rectify', closed: '销号 Close' };
const VEH_STATE_ZH = { moving: '行驶', stopped: '停车', offline: '离线', violation: '违规' };
const FEED_MAX = 300;

const page = {
  config: null,
  user: null,
  map: null,
  mapReady: null,
  vehicles: new Map(), // terminal_id -> {reg: registry row, lat, lon, speed, ts, recvMs}
  violating: new Map(), // terminal_id -> count of its open violations seen
  feed: [], // violations shown, newest first
  kinds: new Set(),
  stream: null,
  selected: null, // terminal_id of the vehicle panel
  selectedViolation: null,
  track: [],
  redrawQueued: false,
  timers: [],
  fitted: false,
};

// --- helpers ------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function clear(node) { while (node.firstChild) node.firstChild.remove(); }

function kindLabel(k) { return KIND_ZH[k] ? `${KIND_ZH[k]} ${k}` : String(k); }

function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  // GMT+8, as the API and the CLI write times
  const t = new Date(d.getTime() + 8 * 3600 * 1000).toISOString();
  return `${t.slice(5, 10)} ${t.slice(11, 19)}`;
}

function fmtNum(x, digits) { return x === null || x === undefined ? '–' : Number(x).toFixed(digits); }

// Requests sent and not yet answered: logging out waits for them (see the logout button).
const inflight = new Set();

async function api(path, opts = {}) {
  // After logging out, what was queued (a delayed reload, a redraw) asks nothing of the API:
  // it would only be answered 401.
  if (!page.user && !['/api/v1/config', '/api/v1/login', '/api/v1/logout'].includes(path)) throw new Error('logged out');
  const init = { credentials: 'same-origin', headers: {} };
  if (opts.body !== undefined) {
    init.method = 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  const sent = fetch(path, init);
  inflight.add(sent);
  let r;
  try {
    r = await sent;
  } finally {
    inflight.delete(sent);
  }
  let data = null;
  const text = await r.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (r.status === 401 && path !== '/api/v1/login') {
    showLogin('会话已过期，请重新登录 Session ended: log in again');
    throw new Error('logged out');
  }
  if (!r.ok) throw Object.assign(new Error((data && data.error) || `HTTP ${r.status}`), { status: r.status, data });
  return data;
}

function inScope(region) {
  if (!page.user) return false;
  for (const code of page.user.regions) {
    if (code === '000000') return true;
    const pre = code.endsWith('0000') ? code.slice(0, 2) : code.endsWith('00') ? code.slice(0, 4) : code;
    if (region && String(region).startsWith(pre)) return true;
  }
  return false;
}

// --- the vehicles' state ------------------------------------------------------------------

function vehicleState(v) {
  if (page.violating.get(v.reg.terminal_id)) return 'violation';
  if (!v.recvMs || Date.now() - v.recvMs > page.config.offline_after_s * 1000) return 'offline';
  return v.speed >= page.config.moving_min_kmh ? 'moving' : 'stopped';
}

function vehiclesGeoJSON() {
  const features = [];
  for (const v of page.vehicles.values()) {
    if (v.lat === null || v.lon === null || v.lat === undefined) continue;
    features.push({
      type: 'Feature',
      geometry: { type: 'Point', coordinates: [v.lon, v.lat] },
      properties: { tid: v.reg.terminal_id, st: vehicleState(v) },
    });
  }
  return { type: 'FeatureCollection', features };
}

function updateCounts() {
  let online = 0, moving = 0, stopped = 0, offline = 0, violating = 0;
  for (const v of page.vehicles.values()) {
    const s = vehicleState(v);
    const base = (!v.recvMs || Date.now() - v.recvMs > page.config.offline_after_s * 1000) ? 'offline'
      : v.speed >= page.config.moving_min_kmh ? 'moving' : 'stopped';
    if (base !== 'offline') online++;
    if (base === 'moving') moving++;
    if (base === 'stopped') stopped++;
    if (base === 'offline') offline++;
    if (s === 'violation') violating++;
  }
  $('c-online').textContent = online;
  $('c-moving').textContent = moving;
  $('c-stopped').textContent = stopped;
  $('c-offline').textContent = offline;
  $('c-violating').textContent = violating;
}

// Redraws at most once a second: a feed of thousands of positions a second must not redraw the
// map for each.
function queueRedraw() {
  if (page.redrawQueued) return;
  page.redrawQueued = true;
  setTimeout(() => {
    page.redrawQueued = false;
    const src = page.map && page.map.getSource('vehicles');
    const gj = vehiclesGeoJSON();
    if (src) src.setData(gj);
    $('map').dataset.count = String(gj.features.length);
    updateCounts();
  }, 1000);
}

async function loadVehicles() {
  const all = new Map();
  let cursor = null;
  do {
    const q = `/api/v1/vehicles?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const ans = await api(q);
    for (const row of ans.items) {
      all.set(row.terminal_id, {
        reg: row, lat: row.lat, lon: row.lon, speed: row.speed_kmh ?? 0, ts: row.ts,
        recvMs: row.recv_at ? Date.parse(row.recv_at) : null, heading: row.heading,
      });
    }
    cursor = ans.next_cursor;
  } while (cursor);
  page.vehicles = all;
  page.fitted = false;
  await page.mapReady;
  const gj = vehiclesGeoJSON();
  page.map.getSource('vehicles').setData(gj);
  $('map').dataset.count = String(gj.features.length);
  $('map').dataset.loaded = '1';
  fitToVehicles(gj);
  updateCounts();
}

function fitToVehicles(gj) {
  if (page.fitted || gj.features.length === 0) return;
  const b = new maplibregl.LngLatBounds();
  for (const f of gj.features) b.extend(f.geometry.coordinates);
  page.map.fitBounds(b, { padding: 40, maxZoom: 12, duration: 0 });
  page.fitted = true;
}

// `event: positions`: the newest state of each vehicle of the user's regions that changed within
// the last flush interval, as [terminal_id, ts_ms, lat, lon, speed_kmh, heading] (README, Live feed).
function onPositions(ev) {
  let batch;
  try { batch = JSON.parse(ev.data); } catch { return; }
  if (!Array.isArray(batch)) return;
  let selected = false;
  for (const p of batch) {
    if (!Array.isArray(p) || p.length < 6) continue;
    const v = page.vehicles.get(p[0]);
    if (!v) continue; // a terminal bound to no vehicle of the registry, or not one the list showed
    v.lat = p[2];
    v.lon = p[3];
    v.speed = p[4];
    v.heading = p[5];
    v.ts = new Date(p[1]).toISOString();
    v.recvMs = Date.now();
    if (page.selected === p[0]) selected = true;
  }
  queueRedraw();
  if (selected) renderVehicleFacts();
}

// --- the map ------------------------------------------------------------------------------

function baseStyle() {
  const c = page.config;
  if (c.map_style) return c.map_style;
  const style = {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#e9edf2' } }],
  };
  if (c.map_tiles) {
    style.sources.base = { type: 'raster', tiles: [c.map_tiles], tileSize: 256 };
    style.layers.push({ id: 'base', type: 'raster', source: 'base' });
  }
  return style;
}

function initMap() {
  const map = new maplibregl.Map({
    container: 'map',
    style: baseStyle(),
    center: [108, 33],
    zoom: 3.6,
    attributionControl: false,
    // keep the WebGL buffer so that a screenshot (and the browser test) sees the drawing
    canvasContextAttributes: { preserveDrawingBuffer: true },
  });
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.ScaleControl(), 'bottom-right');
  page.map = map;
  page.mapReady = new Promise((resolve) => {
    map.on('load', async () => {
      const empty = { type: 'FeatureCollection', features: [] };
      const noBackground = !page.config.map_style && !page.config.map_tiles;
      map.addSource('regions', { type: 'geojson', data: empty });
      map.addLayer({ id: 'regions-fill', type: 'fill', source: 'regions', paint: { 'fill-color': '#ffffff', 'fill-opacity': 0.7 }, layout: { visibility: noBackground ? 'visible' : 'none' } });
      map.addLayer({ id: 'regions-line', type: 'line', source: 'regions', paint: { 'line-color': '#7d8ea3', 'line-width': 1.2 }, layout: { visibility: noBackground ? 'visible' : 'none' } });
      map.addSource('zones', { type: 'geojson', data: empty });
      map.addLayer({ id: 'zones-fill', type: 'fill', source: 'zones', paint: { 'fill-color': ['match', ['get', 'kind'], 'no_entry', '#d93025', '#3366cc'], 'fill-opacity': 0.22 } });
      map.addLayer({ id: 'zones-line', type: 'line', source: 'zones', paint: { 'line-color': ['match', ['get', 'kind'], 'no_entry', '#d93025', '#3366cc'], 'line-width': 1.5 } });
      map.addSource('track', { type: 'geojson', data: empty });
      map.addLayer({ id: 'track-line', type: 'line', source: 'track', paint: { 'line-color': '#1f3a5f', 'line-width': 3, 'line-opacity': 0.8 } });
      map.addSource('vehicles', {
        type: 'geojson', data: empty, cluster: true, clusterRadius: 40, clusterMaxZoom: 9,
        clusterProperties: { violating: ['+', ['case', ['==', ['get', 'st'], 'violation'], 1, 0]] },
      });
      // Cluster sizes grow with their count (no text labels: they would need glyphs).
      map.addLayer({
        id: 'clusters', type: 'circle', source: 'vehicles', filter: ['has', 'point_count'],
        paint: {
          'circle-color': ['case', ['>', ['get', 'violating'], 0], '#f28b82', '#5b8def'],
          'circle-radius': ['step', ['get', 'point_count'], 10, 10, 14, 50, 19, 200, 25, 1000, 32],
          'circle-opacity': 0.75, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 1.5,
        },
      });
      map.addLayer({
        id: 'vehicle-points', type: 'circle', source: 'vehicles', filter: ['!', ['has', 'point_count']],
        paint: {
          'circle-color': ['match', ['get', 'st'], 'moving', '#2e9e44', 'stopped', '#e0a400', 'violation', '#d93025', '#8a8f98'],
          'circle-radius': 6, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 1.5,
        },
      });
      map.addSource('replay', { type: 'geojson', data: empty });
      map.addLayer({ id: 'replay-point', type: 'circle', source: 'replay', paint: { 'circle-color': '#1f3a5f', 'circle-radius': 8, 'circle-stroke-color': '#f2b134', 'circle-stroke-width': 3 } });
      map.on('click', 'clusters', async (e) => {
        const f = e.features[0];
        const zoom = await map.getSource('vehicles').getClusterExpansionZoom(f.properties.cluster_id);
        map.easeTo({ center: f.geometry.coordinates, zoom });
      });
      map.on('click', 'vehicle-points', (e) => selectVehicle(e.features[0].properties.tid));
      for (const l of ['clusters', 'vehicle-points']) {
        map.on('mouseenter', l, () => { map.getCanvas().style.cursor = 'pointer'; });
        map.on('mouseleave', l, () => { map.getCanvas().style.cursor = ''; });
      }
      resolve();
    });
  });
}

async function loadOverlays() {
  await page.mapReady;
  const [zones, regions] = await Promise.all([api('/api/v1/zones'), api('/api/v1/regions')]);
  page.map.getSource('zones').setData(zones);
  page.map.getSource('regions').setData(regions);
}

// Rendered vehicles (the browser test compares this with the API): every point drawn, and
// every point inside a drawn cluster, in the current view.
function renderedVehicleCount() {
  const m = page.map;
  const seen = new Set();
  let n = 0;
  for (const f of m.queryRenderedFeatures({ layers: ['clusters', 'vehicle-points'] })) {
    const key = f.properties.cluster_id !== undefined ? `c${f.properties.cluster_id}` : `v${f.properties.tid}`;
    if (seen.has(key)) continue;
    seen.add(key);
    n += f.properties.point_count || 1;
  }
  return n;
}

// --- the vehicle panel --------------------------------------------------------------------

function fact(dl, k, v) { dl.append(el('dt', {}, k), el('dd', {}, v === null || v === undefined || v === '' ? '–' : v)); }

function renderVehicleFacts() {
  const v = page.vehicles.get(page.selected);
  const dl = $('veh-facts');
  clear(dl);
  if (!v) return;
  const r = v.reg;
  const st = vehicleState(v);
  $('veh-plate').textContent = r.plate;
  fact(dl, '终端 terminal', r.terminal_id);
  fact(dl, '车型 class', r.class);
  fact(dl, '区划 region', r.region);
  fact(dl, '企业 enterprise', r.enterprise);
  fact(dl, 'VIN', r.vin);
  fact(dl, '登记 status', r.status);
  const sd = el('dd', { class: `st-${st}` }, `${VEH_STATE_ZH[st]} ${st}`);
  dl.append(el('dt', {}, '状态 state'), sd);
  fact(dl, '定位时间 fix time', fmtTime(v.ts));
  fact(dl, '位置 position', v.lat === null || v.lat === undefined ? null : `${fmtNum(v.lat, 5)}, ${fmtNum(v.lon, 5)}`);
  fact(dl, '速度 speed', v.speed === null || v.speed === undefined ? null : `${fmtNum(v.speed, 1)} km/h`);
}

async function selectVehicle(tid) {
  page.selected = tid;
  $('vehicle-panel').hidden = false;
  renderVehicleFacts();
  const list = $('veh-violations');
  clear(list);
  const [vio, track] = await Promise.all([
    api(`/api/v1/violations?terminal_id=${encodeURIComponent(tid)}&limit=100`),
    api(`/api/v1/vehicles/${encodeURIComponent(tid)}/track`),
  ]);
  if (page.selected !== tid) return;
  const open = vio.items.filter((x) => x.state !== 'closed');
  if (open.length === 0) list.append(el('li', { class: 'muted' }, '无 none'));
  for (const x of open) {
    list.append(el('li', { on: { click: () => openViolation(x.id) } },
      `${kindLabel(x.kind)} · ${STATE_ZH[x.state] || x.state} · ${fmtTime(x.started_at)}`));
  }
  page.track = track.items.filter((p) => p.lat !== null && p.lon !== null);
  const line = { type: 'FeatureCollection', features: page.track.length > 1 ? [{ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: page.track.map((p) => [p.lon, p.lat]) } }] : [] };
  page.map.getSource('track').setData(line);
  const s = $('replay-slider');
  s.max = String(Math.max(0, page.track.length - 1));
  s.value = s.max;
  s.disabled = page.track.length === 0;
  showReplay();
  if (page.track.length > 1) {
    const b = new maplibregl.LngLatBounds();
    for (const p of page.track) b.extend([p.lon, p.lat]);
    page.map.fitBounds(b, { padding: 60, maxZoom: 13, duration: 300 });
  } else {
    const v = page.vehicles.get(tid);
    if (v && v.lat !== null && v.lat !== undefined) page.map.easeTo({ center: [v.lon, v.lat], zoom: Math.max(page.map.getZoom(), 10) });
  }
}

function showReplay() {
  const info = $('replay-info');
  const src = page.map.getSource('replay');
  if (page.track.length === 0) {
    info.textContent = '近24小时无轨迹 no fixes in the last 24 h';
    src.setData({ type: 'FeatureCollection', features: [] });
    return;
  }
  const p = page.track[Number($('replay-slider').value)];
  info.textContent = `${fmtTime(p.ts)} · ${fmtNum(p.speed_kmh, 1)} km/h · ${Number($('replay-slider').value) + 1}/${page.track.length}`;
  src.setData({ type: 'FeatureCollection', features: [{ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: [p.lon, p.lat] } }] });
}

function closeVehicle() {
  page.selected = null;
  page.track = [];
  $('vehicle-panel').hidden = true;
  page.map.getSource('track').setData({ type: 'FeatureCollection', features: [] });
  page.map.getSource('replay').setData({ type: 'FeatureCollection', features: [] });
}

// --- violations: the feed and one violation -----------------------------------------------

function filters() {
  return {
    kind: $('f-kind').value, state: $('f-state').value,
    region: /^[0-9]{6}$/.test($('f-region').value) ? $('f-region').value : '',
    enterprise: $('f-enterprise').value.trim(),
  };
}

function passes(x, f) {
  if (f.kind && x.kind !== f.kind) return false;
  if (f.state && x.state !== f.state) return false;
  if (f.enterprise && x.enterprise !== f.enterprise) return false;
  if (f.region) {
    const c = f.region;
    const pre = c === '000000' ? '' : c.endsWith('0000') ? c.slice(0, 2) : c.endsWith('00') ? c.slice(0, 4) : c;
    if (!String(x.region || '').startsWith(pre)) return false;
  }
  return true;
}

function addKind(k) {
  if (!k || page.kinds.has(k)) return;
  page.kinds.add(k);
  $('f-kind').append(el('option', { value: k }, kindLabel(k)));
}

function feedItem(x, fresh) {
  const li = el('li', { class: fresh ? 'fresh' : '', 'data-id': String(x.id), 'data-terminal': x.terminal_id || '', on: { click: () => openViolation(x.id) } },
    el('span', { class: 'kind' }, kindLabel(x.kind)),
    el('span', {}, x.plate || x.terminal_id || ''),
    el('span', { class: `badge ${x.state}` }, STATE_ZH[x.state] || x.state),
    el('span', { class: 'sub' }, `${fmtTime(x.started_at)} · ${x.region || '–'} · ${x.enterprise || '–'}${x.measured !== null && x.measured !== undefined && x.kind.includes('speeding') ? ` · ${fmtNum(x.measured, 1)}/${fmtNum(x.limit_value, 0)} km/h` : ''}`));
  return li;
}

function renderFeed() {
  const ul = $('feed');
  clear(ul);
  for (const x of page.feed) ul.append(feedItem(x, x.fresh));
  $('feed-count').textContent = `${page.feed.length}`;
}

// Each change of a filter or period starts a load; the answers can arrive out of order (and a
// browser may fire both input and change for one edit), so only the latest load of a list may
// draw it. Each call of the returned function starts a turn and gives its "still current?" test.
function latestOnly() {
  let n = 0;
  return () => {
    const mine = ++n;
    return () => mine === n;
  };
}

const feedTurn = latestOnly();

async function loadFeed() {
  const f = filters();
  const q = new URLSearchParams({ limit: '200' });
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  const current = feedTurn();
  const ans = await api(`/api/v1/violations?${q}`);
  if (!current()) return;
  page.feed = ans.items;
  for (const x of ans.items) addKind(x.kind);
  renderFeed();
}

// Which vehicles are in violation now: every open violation in the user's regions.
async function loadViolating() {
  const m = new Map();
  for (const st of ['open', 'notified', 'rectifying']) {
    let cursor = null;
    let pages = 0;
    do {
      const ans = await api(`/api/v1/violations?state=${st}&limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
      for (const x of ans.items) {
        m.set(x.terminal_id, (m.get(x.terminal_id) || 0) + 1);
        addKind(x.kind);
      }
      cursor = ans.next_cursor;
    } while (cursor && ++pages < 20);
  }
  page.violating = m;
  queueRedraw();
}

async function loadSummary() {
  const s = await api('/api/v1/summary');
  $('c-registered').textContent = s.vehicles;
  // Stored fixes of today (GMT+8), from the daily figures: as of the daemon's last daily flush.
  const fixes = $('c-fixes');
  fixes.textContent = Number(s.fixes_today).toLocaleString('en-US');
  fixes.title = s.fixes_as_of ? `as of ${s.fixes_as_of}` : '';
  const box = $('c-open');
  clear(box);
  const kinds = Object.entries(s.open_violations);
  if (kinds.length === 0) box.append(el('span', {}, '0'));
  for (const [k, n] of kinds) box.append(el('span', { title: k }, `${KIND_ZH[k] || k} `, el('b', {}, String(n))));
}

let violatingTimer = null;
function queueViolating() {
  if (violatingTimer) return;
  violatingTimer = setTimeout(() => { violatingTimer = null; loadViolating().catch(() => {}); }, 5000);
}

let summaryTimer = null;
function queueSummary() {
  if (summaryTimer) return;
  summaryTimer = setTimeout(() => { summaryTimer = null; loadSummary().catch(() => {}); }, 1500);
}

function onViolation(ev) {
  let x;
  try { x = JSON.parse(ev.data); } catch { return; }
  addKind(x.kind);
  // the relay's times are UTC ("...Z"): the same instants the API writes in GMT+8
  const i = page.feed.findIndex((y) => y.id === x.id);
  const prev = i >= 0 ? page.feed[i] : null;
  if (i >= 0) page.feed.splice(i, 1);
  if (passes(x, filters())) {
    page.feed.unshift(Object.assign({}, prev || {}, x, { fresh: true }));
    if (page.feed.length > FEED_MAX) page.feed.length = FEED_MAX;
  }
  renderFeed();
  for (const y of page.feed) y.fresh = false;
  // vehicles in violation: a new one turns its vehicle red at once; the full count is read
  // again shortly after (a burst of events costs one reload)
  if (x.event === 'new' && x.state !== 'closed') page.violating.set(x.terminal_id, (page.violating.get(x.terminal_id) || 0) + 1);
  queueViolating();
  queueRedraw();
  queueSummary();
  if (x.kind === 'retired_class') queueTractors();
  if (page.selectedViolation === x.id) openViolation(x.id);
  if (page.selected === x.terminal_id) selectVehicle(x.terminal_id);
}

async function openViolation(id) {
  page.selectedViolation = id;
  $('violation-panel').hidden = false;
  $('vio-error').textContent = '';
  const v = await api(`/api/v1/violations/${encodeURIComponent(id)}`);
  if (page.selectedViolation !== id) return;
  $('vio-title').textContent = `#${v.id}`;
  const dl = $('vio-facts');
  clear(dl);
  fact(dl, '类型 kind', kindLabel(v.kind));
  fact(dl, '状态 state', `${STATE_ZH[v.state] || v.state} ${v.state}`);
  fact(dl, '车牌 plate', v.plate);
  fact(dl, '终端 terminal', v.terminal_id);
  fact(dl, '区划 region', v.region);
  fact(dl, '企业 enterprise', v.enterprise);
  fact(dl, '开始 started', fmtTime(v.started_at));
  fact(dl, '结束 ended', v.ended_at ? fmtTime(v.ended_at) : '进行中 ongoing');
  if (v.measured !== null) fact(dl, '测量/限值 measured/limit', `${fmtNum(v.measured, 1)} / ${fmtNum(v.limit_value, 1)}`);
  if (v.grade !== null) fact(dl, '等级 grade', v.grade);
  if (v.closed_at) fact(dl, '销号 closed', `${fmtTime(v.closed_at)} · ${v.closed_by} · ${v.close_note}`);
  const audit = $('vio-audit');
  clear(audit);
  if (v.audit.length === 0) audit.append(el('li', { class: 'muted' }, '无 none'));
  for (const a of v.audit) audit.append(el('li', {}, `${fmtTime(a.at)} ${a.from} → ${a.to} · ${a.actor}${a.note ? ` · ${a.note}` : ''}`));
  // Lifecycle buttons for operators and admins only; a viewer's page has none at all.
  const canAct = page.user.role === 'operator' || page.user.role === 'admin';
  const box = $('vio-buttons');
  clear(box);
  $('vio-actions').hidden = !canAct || !v.next_state;
  if (canAct && v.next_state) {
    const to = v.next_state;
    box.append(el('button', { type: 'button', class: 'primary', 'data-to': to, on: { click: () => transition(v.id, to) } }, STEP[to] || to));
  }
  // the vehicle's track of the episode on the map
  if (v.track && v.track.length > 1) {
    page.map.getSource('track').setData({ type: 'FeatureCollection', features: [{ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: v.track.map((p) => [p.lon, p.lat]) } }] });
  }
}

async function transition(id, to) {
  const note = $('vio-note').value.trim();
  $('vio-error').textContent = '';
  if (to === 'closed' && !note) {
    $('vio-error').textContent = '销号需填写处理意见 Closing needs a note';
    return;
  }
  try {
    await api(`/api/v1/violations/${encodeURIComponent(id)}/transition`, { body: { to, note } });
    $('vio-note').value = '';
  } catch (e) {
    $('vio-error').textContent = e.message;
  }
  await openViolation(id);
}

// --- converted tractors -------------------------------------------------------------------

async function loadTractors() {
  const rows = [];
  let cursor = null;
  do {
    const ans = await api(`/api/v1/converted-tractors?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    rows.push(...ans.items);
    cursor = ans.next_cursor;
  } while (cursor);
  const tb = $('tractors').tBodies[0];
  clear(tb);
  let moved = 0;
  for (const t of rows) {
    if (t.moved_after_retirement) moved++;
    const where = t.last_lat !== null ? ` @ ${fmtNum(t.last_lat, 4)}, ${fmtNum(t.last_lon, 4)}` : '';
    tb.append(el('tr', { class: t.moved_after_retirement ? 'moved' : '', 'data-terminal': t.terminal_id, on: { click: () => selectVehicle(t.terminal_id) } },
      el('td', {}, t.plate),
      el('td', {}, t.region),
      el('td', {}, t.moved_after_retirement ? '是 yes' : '否 no'),
      el('td', {}, t.last_moved_at ? `${fmtTime(t.last_moved_at)}${where}` : '–'),
      el('td', { class: `st-${t.state || 'offline'}` }, t.state ? `${VEH_STATE_ZH[t.state]} ${t.state}` : '–')));
  }
  if (rows.length === 0) tb.append(el('tr', {}, el('td', { colSpan: 5, class: 'muted' }, '本辖区无变型拖拉机 none in your regions')));
  $('tractor-count').textContent = `${rows.length} · ${moved} 淘汰后仍行驶 moved since phase-out`;
}

// --- active-safety alarms -----------------------------------------------------------------
// GET /api/v1/alarms: the newest ADAS/DSM/TPMS/BSD alarms in the user's regions (README,
// "Active-safety alarms"); a click shows the vehicle and, below the list, the alarm's files
// (GET /api/v1/alarms/{alarm_no}/attachments: photos, clips, recordings the device uploaded
// after the daemon's 0x9208; README, "Active-safety attachments").

const ALARM_TYPE_ZH = {
  'adas:1': '前向碰撞 forward collision', 'adas:2': '车道偏离 lane departure', 'adas:3': '车距过近 headway',
  'adas:4': '行人碰撞 pedestrian', 'dsm:1': '疲劳驾驶 fatigue', 'dsm:2': '接打电话 phone', 'dsm:3': '抽烟 smoking',
  'dsm:4': '分神驾驶 distracted', 'dsm:5': '驾驶员异常 driver abnormal',
};
const ALARM_KIND_ZH = { adas: 'ADAS', dsm: 'DSM', tpms: '胎压 TPMS', bsd: '盲区 BSD' };

async function loadAlarms() {
  const ans = await api('/api/v1/alarms?limit=50');
  const tb = $('alarms').tBodies[0];
  clear(tb);
  for (const a of ans.items) {
    const name = ALARM_TYPE_ZH[`${a.kind}:${a.type}`] || `${ALARM_KIND_ZH[a.kind] || a.kind} ${a.type}`;
    tb.append(el('tr', { class: a.level === 2 ? 'level2' : '', 'data-terminal': a.terminal_id, 'data-alarm': a.alarm_no,
      on: { click: () => { selectVehicle(a.terminal_id); openAlarmFiles(a, name).catch(() => {}); } } },
      el('td', {}, fmtTime(a.alarm_at)),
      el('td', {}, a.vehicle || a.terminal_id),
      el('td', {}, name),
      el('td', {}, a.level === null ? '–' : String(a.level)),
      el('td', {}, a.speed_kmh === null ? '–' : String(a.speed_kmh)),
      el('td', {}, String(a.attachments))));
  }
  if (ans.items.length === 0) tb.append(el('tr', {}, el('td', { colSpan: 6, class: 'muted' }, '暂无报警 no alarms')));
  $('alarm-count').textContent = `${ans.items.length}${ans.next_cursor ? '+' : ''}`;
}

// One file of an alarm as the browser can show it: a picture as an image, mp4 as a player,
// audio as a player, anything else (AVI, raw H.264, text) as a download link. A file still being
// received is named, not fetched (its bytes are not served until complete).
function alarmFile(f) {
  const label = `${f.name} (${Math.round(f.size / 1024)} KiB)`;
  const ct = f.content_type || '';
  let media;
  if (!f.complete) media = el('span', { class: 'muted' }, '接收中 receiving');
  else if (ct.startsWith('image/')) media = el('img', { src: f.url, alt: f.name, loading: 'lazy' });
  else if (ct === 'video/mp4') media = el('video', { src: f.url, controls: true, preload: 'metadata' });
  else if (ct.startsWith('audio/')) media = el('audio', { src: f.url, controls: true, preload: 'metadata' });
  else media = el('a', { href: f.url, download: f.name }, '下载 download');
  return el('figure', { class: 'alarm-file', 'data-name': f.name }, media, el('figcaption', {}, label));
}

let alarmFilesFor = null;
async function openAlarmFiles(a, name) {
  const box = $('alarm-files');
  alarmFilesFor = a.alarm_no;
  clear(box);
  box.hidden = false;
  box.append(el('h3', {}, `${a.vehicle || a.terminal_id} · ${name} · ${fmtTime(a.alarm_at)} · ${a.alarm_no}`));
  const ans = await api(`/api/v1/alarms/${encodeURIComponent(a.alarm_no)}/attachments`);
  if (alarmFilesFor !== a.alarm_no) return; // another alarm was clicked meanwhile
  if (ans.attachments.length === 0) {
    box.append(el('p', { class: 'muted' }, a.attachments > 0 ? '附件尚未上传 files not uploaded yet' : '无附件 no files'));
    return;
  }
  box.append(el('div', { class: 'alarm-file-list' }, ...ans.attachments.map(alarmFile)));
}

let tractorTimer = null;
function queueTractors() {
  if (tractorTimer) return;
  tractorTimer = setTimeout(() => { tractorTimer = null; loadTractors().catch(() => {}); }, 2000);
}

// --- crackdown lists ----------------------------------------------------------------------
// GET /api/v1/crackdown/{list}: the same lists as `haulwatch report phaseout|registry-audit|
// offline-movers`, in the user's regions; a few columns here, every column in the exports.

const CD_COLUMNS = {
  'phaseout': [['plate', '车牌 plate'], ['region', '区划 region'], ['status', '登记 status'],
    ['days_moved', '淘汰后行驶天数 days moved'], ['km_since', '里程 km'], ['last_moved', '最后行驶 last moved'],
    ['violation_states', '违规 violations']],
  'registry-audit': [['plate', '车牌 plate'], ['region', '区划 region'], ['axles', '轴 axles'],
    ['total_mass_kg', '总质量 total kg'], ['curb_mass_kg', '整备 curb kg'], ['rated_load_kg', '核载 load kg'],
    ['reasons', '疑点 reasons']],
  'offline-movers': [['enterprise', '企业 enterprise'], ['plate', '车牌 plate'], ['episodes', '次数 episodes'],
    ['km_total', '位移 km'], ['last_started_at', '最近 last']],
};
const crackdown = { list: 'phaseout', bound: false };

function bindCrackdownTabs() {
  if (crackdown.bound) return;
  crackdown.bound = true;
  for (const b of $('cd-tabs').querySelectorAll('button[data-list]')) {
    b.addEventListener('click', () => {
      crackdown.list = b.dataset.list;
      loadCrackdown().catch(() => {});
    });
  }
}

async function loadCrackdown() {
  bindCrackdownTabs();
  const list = crackdown.list;
  for (const b of $('cd-tabs').querySelectorAll('button[data-list]')) b.setAttribute('aria-selected', String(b.dataset.list === list));
  const url = `/api/v1/crackdown/${list}`;
  $('cd-csv').href = `${url}?format=csv`;
  $('cd-xlsx').href = `${url}?format=xlsx`;
  const ans = await api(url);
  if (list !== crackdown.list) return; // another tab was chosen meanwhile
  const cols = CD_COLUMNS[list];
  const head = $('cd-table').tHead.rows[0];
  clear(head);
  for (const [, label] of cols) head.append(el('th', {}, label));
  const tb = $('cd-table').tBodies[0];
  clear(tb);
  for (const r of ans.items) {
    tb.append(el('tr', { 'data-list': list, 'data-terminal': r.terminal_id || '', on: r.terminal_id ? { click: () => selectVehicle(r.terminal_id) } : {} },
      ...cols.map(([k]) => el('td', {}, k === 'last_started_at' ? fmtTime(r[k]) : r[k] === null || r[k] === undefined ? '–' : r[k]))));
  }
  if (ans.items.length === 0) tb.append(el('tr', {}, el('td', { colSpan: cols.length, class: 'muted' }, '本辖区无 none in your regions')));
  $('cd-count').textContent = `${ans.items.length}${ans.truncated ? '+' : ''}`;
}

// --- the KPI panel (GET /api/v1/kpi and /api/v1/kpi/daily) ---------------------------------

const KPI_RATES = [
  // field, label, colour of its trend line
  ['rate_online', '上线率 online', '#2e9e44'],
  ['rate_track_complete', '轨迹完整率 track complete', '#5b8def'],
  ['rate_qualified', '数据合格率 qualified', '#e0a400'],
  ['rate_drifting', '漂移车辆率 drifting', '#d93025'],
];
const KPI_COLS = [
  ['group', '区划 group', (v) => v],
  ['vehicles_online', '上线 online', (v) => fmtNum(v, 0)],
  ['rate_connected', '入网率 connected', fmtRate],
  ['rate_online', '上线率 online', fmtRate],
  ['rate_track_complete', '轨迹完整 track', fmtRate],
  ['rate_qualified', '合格 qualified', fmtRate],
  ['rate_drifting', '漂移 drifting', fmtRate],
  ['speeding_per_vehicle', '超速/车 speeding', (v) => fmtNum(v, 2)],
  ['fatigue_hours_per_vehicle', '疲劳h/车 fatigue', (v) => fmtNum(v, 2)],
  ['score', '得分 score', (v) => fmtNum(v, 2)],
];
const SVG_NS = 'http://www.w3.org/2000/svg';

// A rate (a fraction) as a percentage with two decimals; '–' when it has no denominator.
function fmtRate(x) { return x === null || x === undefined ? '–' : `${(Number(x) * 100).toFixed(2)} %`; }

// GMT+8 calendar day of a time, as the API's dates are.
function cstDay(ms) { return new Date(ms + 8 * 3600e3).toISOString().slice(0, 10); }

function svg(tag, attrs) {
  const n = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  return n;
}

// The trend lines: one path per rate over the days, 0..100 % upwards; a day without a value
// breaks the line instead of drawing it at 0.
function drawKpiTrend(days) {
  const box = $('kpi-trend');
  clear(box);
  const W = 320, H = 120, L = 30, R = 6, T = 6, B = 18;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': 'KPI trend per day' });
  const x = (i) => L + (days.length > 1 ? i * (W - L - R) / (days.length - 1) : (W - L - R) / 2);
  const y = (v) => T + (1 - v) * (H - T - B);
  for (const v of [0, 0.5, 1]) {
    s.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#dde3ea', 'stroke-width': 1 }));
    const t = svg('text', { x: L - 3, y: y(v) + 3, 'text-anchor': 'end', 'font-size': 9, fill: '#6b7785' });
    t.textContent = `${v * 100}%`;
    s.append(t);
  }
  if (days.length) {
    for (const [i, anchor] of [[0, 'start'], [days.length - 1, 'end']]) {
      const t = svg('text', { x: x(i), y: H - 4, 'text-anchor': anchor, 'font-size': 9, fill: '#6b7785' });
      t.textContent = days[i].day.slice(5);
      s.append(t);
    }
  }
  for (const [field, label, colour] of KPI_RATES) {
    let d = '', pen = 'M';
    days.forEach((day, i) => {
      const v = day[field];
      if (v === null || v === undefined) { pen = 'M'; return; }
      d += `${pen}${x(i).toFixed(1)},${y(Number(v)).toFixed(1)} `;
      pen = 'L';
    });
    const p = svg('path', { d: d.trim() || 'M0,0', fill: 'none', stroke: colour, 'stroke-width': 1.5, 'data-field': field });
    const title = svg('title');
    title.textContent = label;
    p.append(title);
    s.append(p);
  }
  box.append(s);
  const legend = el('div', { class: 'kpi-legend' });
  for (const [, label, colour] of KPI_RATES) legend.append(el('span', { style: `border-color:${colour}` }, label));
  box.append(legend);
}

function kpiQuery() {
  const region = $('kpi-region').value;
  const q = new URLSearchParams({ from: $('kpi-from').value, to: $('kpi-to').value });
  if (region !== '000000') q.set('region', region);
  return q;
}

const kpiTurn = latestOnly();

async function loadKpi() {
  const q = kpiQuery();
  const current = kpiTurn();
  let rows, daily;
  try {
    [rows, daily] = await Promise.all([api(`/api/v1/kpi?${q}`), api(`/api/v1/kpi/daily?${q}`)]);
  } catch (e) {
    if (current()) throw e;
    return;
  }
  if (!current()) return;
  const panel = $('kpi-panel');
  panel.dataset.query = q.toString();
  const tb = $('kpi-table').tBodies[0];
  clear(tb);
  for (const r of rows.items) {
    tb.append(el('tr', { 'data-group': r.group },
      ...KPI_COLS.map(([f, , fmt]) => el('td', { 'data-field': f }, fmt(r[f])))));
  }
  if (rows.items.length === 0) tb.append(el('tr', {}, el('td', { colSpan: KPI_COLS.length, class: 'muted' }, '无数据 no vehicles')));
  drawKpiTrend(daily.items);
  panel.dataset.loaded = String(Date.now());
}

function initKpi(user) {
  const sel = $('kpi-region');
  clear(sel);
  for (const r of user.regions) sel.append(el('option', { value: r }, r === '000000' ? '全国 all' : r));
  const now = Date.now();
  $('kpi-to').value = cstDay(now);
  $('kpi-from').value = cstDay(now - 6 * 86400e3);
  const thead = $('kpi-table').tHead;
  clear(thead);
  thead.append(el('tr', {}, ...KPI_COLS.map(([, label]) => el('th', {}, label))));
  $('kpi-error').textContent = '';
  return loadKpi().catch((e) => { $('kpi-error').textContent = e.message; });
}

function bindKpi() {
  for (const id of ['kpi-region', 'kpi-from', 'kpi-to']) {
    $(id).addEventListener('change', () => {
      $('kpi-error').textContent = '';
      loadKpi().catch((e) => { $('kpi-error').textContent = e.message; });
    });
  }
  $('kpi-form').addEventListener('submit', (e) => e.preventDefault());
}

// --- the live feed ------------------------------------------------------------------------

function startStream() {
  const es = new EventSource('/api/v1/stream');
  page.stream = es;
  es.addEventListener('open', () => { $('live').className = 'live on'; $('live').title = 'live feed connected'; });
  es.addEventListener('error', () => { $('live').className = 'live off'; $('live').title = 'live feed reconnecting'; });
  es.addEventListener('positions', onPositions);
  es.addEventListener('violation', onViolation);
  // the hub could not replay what this page missed: reload what it shows
  es.addEventListener('reset', () => { reloadAll().catch(() => {}); });
}

async function reloadAll() {
  await Promise.all([loadViolating(), loadFeed(), loadSummary(), loadTractors(), loadAlarms().catch(() => {})]);
  await loadVehicles();
}

// --- login and start ----------------------------------------------------------------------

function showLogin(msg) {
  stop();
  page.user = null;
  $('app').hidden = true;
  $('who').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = msg || '';
  $('login-user').focus();
}

function stop() {
  if (page.stream) page.stream.close();
  page.stream = null;
  for (const t of page.timers) clearInterval(t);
  page.timers = [];
  for (const t of [violatingTimer, summaryTimer, tractorTimer]) clearTimeout(t);
  violatingTimer = summaryTimer = tractorTimer = null;
}

async function start(user) {
  page.user = user;
  $('login-view').hidden = true;
  $('app').hidden = false;
  $('who').hidden = false;
  $('who-name').textContent = user.user;
  $('who-role').textContent = user.role;
  $('who-regions').textContent = user.regions.join(' ');
  document.body.dataset.role = user.role;
  if (!page.map) initMap();
  else page.map.resize();
  startStream();
  await Promise.all([loadOverlays(), reloadAll(), loadCrackdown(), initKpi(user)]);
  // offline is a matter of time passing; the tractors' last positions move with the rules
  page.timers.push(setInterval(queueRedraw, 10000));
  page.timers.push(setInterval(queueTractors, 60000));
  // the fixes stored today grow with every daily flush, not with an event
  page.timers.push(setInterval(queueSummary, 30000));
  page.timers.push(setInterval(() => { loadAlarms().catch(() => {}); }, 30000));
  document.body.dataset.ready = '1';
}

async function main() {
  page.config = await api('/api/v1/config');
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('login-error').textContent = '';
    try {
      await api('/api/v1/login', { body: { user: $('login-user').value, password: $('login-password').value } });
    } catch (err) {
      $('login-error').textContent = err.status === 429 ? '尝试过多，请稍后 Too many attempts: try later'
        : err.status === 401 ? '用户名或密码错误 Wrong user or password' : err.message;
      return;
    }
    $('login-password').value = '';
    page.config = await api('/api/v1/config');
    await start(page.config.user);
  });
  $('logout').addEventListener('click', async () => {
    // Nothing new is asked from here on; what was already sent (a filter's change fired by this
    // very click taking the focus, a reload) is let finish first, or the server, having ended
    // the session, would answer it 401: an error on the console and a false "session ended".
    stop();
    page.user = null;
    const settled = Promise.allSettled([...inflight]);
    await Promise.race([settled, new Promise((r) => setTimeout(r, 5000))]);
    try { await api('/api/v1/logout', { body: {} }); } catch { /* the session is gone either way */ }
    document.body.dataset.ready = '';
    showLogin();
  });
  $('veh-close').addEventListener('click', closeVehicle);
  $('vio-close').addEventListener('click', () => { page.selectedViolation = null; $('violation-panel').hidden = true; });
  $('replay-slider').addEventListener('input', showReplay);
  for (const id of ['f-kind', 'f-state', 'f-region', 'f-enterprise']) $(id).addEventListener('change', () => loadFeed().catch(() => {}));
  $('feed-filters').addEventListener('submit', (e) => e.preventDefault());
  bindKpi();
  if (page.config.user) await start(page.config.user);
  else showLogin();
}

// for the browser test and for a curious officer's console
window.haulwatch = { page, renderedVehicleCount, selectVehicle, openViolation, loadKpi };

main().catch((e) => { if (e.message !== 'logged out') { $('login-error').textContent = e.message; } });
