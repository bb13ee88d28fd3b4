// mkweb's page: lists the stores, shows one store's items with live values
// (WebSocket /ws), forms for settable items (POST /api/items/...), bulk
// images on canvases and collections as live tables. Plain JS, no library.
'use strict';

const params = new URLSearchParams(location.search);
const state = {
  store: null,      // the store shown
  items: {},        // full key -> description
  subscribed: [],   // full keys asked of the gateway
  ws: null,
  collections: {},  // full key -> {seq, rows: Map(rowid text -> row)}
  bulk: {},         // full key -> {busy, next}
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

function cssEscape(s) { return window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/"/g, '\\"'); }
function row(item) { return document.querySelector(`tr[data-item="${cssEscape(item)}"]`); }
function timeText(t) { return t ? new Date(t * 1000).toLocaleTimeString() : ''; }

// ---- stores ---------------------------------------------------------------------

async function loadStores() {
  const list = document.getElementById('stores');
  try {
    const r = await fetch('/api/stores');
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.text : r.statusText);
    list.replaceChildren(...body.stores.map(s => {
      const li = el('li', {'data-store': s}, s);
      li.addEventListener('click', () => showStore(s));
      return li;
    }));
    document.getElementById('stores-error').textContent = '';
    const wanted = params.get('store');
    if (wanted) showStore(wanted);
    else if (body.stores.length === 1) showStore(body.stores[0]);
  } catch (e) {
    document.getElementById('stores-error').textContent = 'cannot list stores: ' + e.message;
  }
}

async function showStore(store) {
  for (const li of document.querySelectorAll('#stores li'))
    li.classList.toggle('selected', li.dataset.store === store);
  unsubscribeAll();
  state.store = store;
  document.getElementById('store').hidden = false;
  document.getElementById('store-name').textContent = store;
  const tbody = document.querySelector('#items tbody');
  const extras = document.getElementById('extras');
  tbody.replaceChildren();
  extras.replaceChildren();
  const error = document.getElementById('store-error');
  error.textContent = '';
  let body;
  try {
    const r = await fetch('/api/stores/' + encodeURIComponent(store));
    body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.type + ': ' + body.error.text : r.statusText);
  } catch (e) {
    error.textContent = e.message;
    return;
  }
  if (state.store !== store) return;  // another store was chosen meanwhile
  state.items = {};
  // The store's own items first, then the daemon's built-in ones (_ALIASclk...).
  const keys = Object.keys(body.items).sort((a, b) =>
    (a.startsWith('_') - b.startsWith('_')) || (a < b ? -1 : a > b ? 1 : 0));
  for (const key of keys) {
    const full = store + '.' + key;
    const d = body.items[key] || {};
    state.items[full] = d;
    if (key.startsWith('_') && !tbody.querySelector('tr.builtin')) {
      tbody.append(el('tr', {class: 'builtin'}, el('th', {colSpan: 5}, "the daemon's built-in items")));
    }
    tbody.append(itemRow(full, key, d));
    if (d.type === 'collection') {
      const table = el('table', {class: 'collection', 'data-item': full}, el('caption', {}, full));
      table.append(el('thead'), el('tbody'));
      extras.append(table);
    }
  }
  subscribe(Object.keys(state.items));
}

// ---- item rows and forms ----------------------------------------------------------

function settable(d) {
  return d.settable !== false && d.type !== 'bulk' && d.type !== 'collection';
}

function itemRow(full, key, d) {
  const tr = el('tr', {'data-item': full, title: d.description || ''});
  const value = el('td', {class: 'value'});
  tr.append(el('td', {class: 'key'}, key), value, el('td', {class: 'units'}, unitsOf(d)), el('td', {class: 'time'}));
  const cell = el('td', {class: 'control'});
  if (settable(d)) cell.append(setForm(full, d));
  cell.append(el('span', {class: 'error'}));
  tr.append(cell);
  if (d.type === 'bulk') {
    // The frame's text and its canvas share the value cell.
    const canvas = el('canvas', {'data-item': full, width: 1, height: 1});
    value.append(el('span', {class: 'text'}), canvas);
  }
  return tr;
}

function unitsOf(d) {
  if (!d.units) return '';
  return typeof d.units === 'object' ? (d.units.formatted || d.units[''] || '') : String(d.units);
}

function enumerators(d) {
  return Object.entries(d.enumerators || {}).sort((a, b) => Number(a[0]) - Number(b[0]));
}

function setForm(full, d) {
  // noValidate: min/max show the limits, but the daemon judges the value and
  // its error is shown beside the control.
  const form = el('form', {class: 'set', 'data-item': full, noValidate: true});
  let control;
  if (d.type === 'boolean') {
    control = el('input', {type: 'checkbox', name: 'value'});
  } else if (d.type === 'enumerated') {
    control = el('select', {name: 'value'});
    for (const [n, name] of enumerators(d)) control.append(el('option', {value: name, 'data-n': n}, name));
  } else if (d.type === 'numeric') {
    control = el('input', {type: 'number', name: 'value', step: 'any'});
    if (d.min !== undefined && d.min !== null) control.min = d.min;
    if (d.max !== undefined && d.max !== null) control.max = d.max;
  } else {
    control = el('input', {type: 'text', name: 'value'});
  }
  form.append(control, el('button', {type: 'submit'}, 'set'));
  form.addEventListener('submit', ev => { ev.preventDefault(); submitSet(full, d, control); });
  return form;
}

function controlValue(d, control) {
  if (control.type === 'checkbox') return control.checked;
  if (control.type === 'number') return control.value === '' ? '' : Number(control.value);
  return control.value;
}

async function submitSet(full, d, control) {
  const error = row(full).querySelector('.error');
  const headers = {'Content-Type': 'application/json'};
  const token = document.getElementById('token').value;
  if (token) headers.Authorization = 'Bearer ' + token;
  try {
    const r = await fetch('/api/items/' + encodeURIComponent(full), {
      method: 'POST', headers, body: JSON.stringify({value: controlValue(d, control)}),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error ? body.error.text : r.status + ' ' + r.statusText);
    error.textContent = '';
  } catch (e) {
    error.textContent = e.message;
  }
}

// The control follows the value unless someone is typing in it.
function showInControl(tr, d, msg) {
  const control = tr.querySelector('form.set [name=value]');
  if (!control || document.activeElement === control) return;
  if (control.type === 'checkbox') control.checked = Boolean(msg.value);
  else if (control.tagName === 'SELECT') {
    const option = [...control.options].find(o => o.dataset.n === String(msg.value) || o.value === msg.formatted);
    if (option) control.value = option.value;
  } else if (control.type === 'number') {
    if (typeof msg.value === 'number') control.value = msg.value;
  } else if (msg.value !== null && msg.value !== undefined) {
    control.value = typeof msg.value === 'string' ? msg.value : JSON.stringify(msg.value);
  }
}

// ---- WebSocket --------------------------------------------------------------------

function setStatus(text) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.className = text;
}

function send(message) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

function subscribe(items) {
  state.subscribed = items;
  if (items.length) send({op: 'subscribe', items});
}

function unsubscribeAll() {
  if (state.subscribed.length) send({op: 'unsubscribe', items: state.subscribed});
  state.subscribed = [];
  state.collections = {};
  state.bulk = {};
}

function connect() {
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  state.ws = ws;
  ws.onopen = () => {
    setStatus('connected');
    if (state.subscribed.length) send({op: 'subscribe', items: state.subscribed});
  };
  ws.onclose = () => {
    setStatus('disconnected');
    state.ws = null;
    setTimeout(connect, 1000);
  };
  ws.onmessage = ev => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.type === 'value') onValue(msg);
    else if (msg.type === 'snapshot') onSnapshot(msg);
    else if (msg.type === 'change') onChange(msg);
    else if (msg.type === 'error') onError(msg);
  };
}

const kLongValue = 120;

function onValue(msg) {
  const tr = row(msg.item);
  if (!tr) return;
  const d = state.items[msg.item] || {};
  const value = tr.querySelector('.value');
  if (msg.bulk) {
    value.querySelector('.text').textContent = msg.formatted;
    fetchBulk(msg.item, msg.bulk.url);
  } else {
    // A long value (a catalog, say) is cut short; the whole of it is in the tooltip.
    const text = String(msg.formatted);
    value.textContent = text.length > kLongValue ? text.slice(0, kLongValue) + '\u2026' : text;
    value.title = text.length > kLongValue ? text : '';
    showInControl(tr, d, msg);
  }
  if (msg.units) tr.querySelector('.units').textContent = msg.units;
  tr.querySelector('.time').textContent = timeText(msg.time);
}

function onError(msg) {
  if (!msg.item) { console.warn('mkweb:', msg.error); return; }
  const tr = row(msg.item);
  if (tr) tr.querySelector('.error').textContent = msg.error.type + ': ' + msg.error.text;
}

// ---- bulk images ------------------------------------------------------------------

const typed = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array, uint32: Uint32Array,
  int32: Int32Array, float32: Float32Array, float64: Float64Array,
};

// One fetch at a time per item; a newer frame announced meanwhile is fetched next.
async function fetchBulk(item, url) {
  const b = state.bulk[item] || (state.bulk[item] = {busy: false, next: null});
  if (b.busy) { b.next = url; return; }
  b.busy = true;
  try {
    const r = await fetch(url, {cache: 'no-store'});
    if (r.ok) {
      const shape = (r.headers.get('X-Shape') || '').split(',').map(Number);
      drawImage(item, await r.arrayBuffer(), shape, r.headers.get('X-Dtype'));
    }
  } catch (e) {
    console.warn('mkweb: frame of', item, e);
  }
  b.busy = false;
  if (b.next) { const next = b.next; b.next = null; fetchBulk(item, next); }
}

// Auto-stretched greyscale: the frame's min..max onto 0..255.
function drawImage(item, buffer, shape, dtype) {
  const canvas = document.querySelector(`canvas[data-item="${cssEscape(item)}"]`);
  const Type = typed[dtype];
  if (!canvas || !Type || buffer.byteLength % Type.BYTES_PER_ELEMENT) return;
  const pixels = new Type(buffer);
  const height = shape.length >= 2 ? shape[0] : 1;
  const width = shape.length >= 2 ? shape[1] : pixels.length;
  const n = width * height;
  if (!n || pixels.length < n) return;
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = Number(pixels[i]);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const scale = hi > lo ? 255 / (hi - lo) : 0;
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < n; i++) {
    const g = (Number(pixels[i]) - lo) * scale;
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = g;
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
}

// ---- collections ------------------------------------------------------------------

function onSnapshot(msg) {
  const rows = new Map();
  for (const r of msg.rows) rows.set(JSON.stringify(r.rowid), {rowid: r.rowid, value: r.value});
  state.collections[msg.item] = {seq: msg.seq, rows};
  renderCollection(msg.item);
}

function onChange(msg) {
  const c = state.collections[msg.item];
  if (!c || msg.seq <= c.seq) return;  // before the snapshot, or already in it
  c.seq = msg.seq;
  const id = JSON.stringify(msg.rowid);
  if (msg.op === 'delete' || msg.exists === false) c.rows.delete(id);
  else c.rows.set(id, {rowid: msg.rowid, value: msg.row});
  renderCollection(msg.item);
}

function renderCollection(item) {
  const table = document.querySelector(`table.collection[data-item="${cssEscape(item)}"]`);
  const c = state.collections[item];
  if (!table || !c) return;
  const columns = [];
  for (const r of c.rows.values())
    for (const k of Object.keys(r.value || {})) if (!columns.includes(k)) columns.push(k);
  table.tHead.replaceChildren(el('tr', {}, el('th', {}, 'id'), ...columns.map(k => el('th', {}, k))));
  table.tBodies[0].replaceChildren(...[...c.rows.values()].map(r =>
    el('tr', {'data-rowid': JSON.stringify(r.rowid)}, el('td', {}, String(r.rowid)),
       ...columns.map(k => el('td', {}, format(r.value ? r.value[k] : undefined))))));
  const tr = row(item);
  if (tr) tr.querySelector('.value').textContent = c.rows.size + ' rows, seq ' + c.seq;
}

function format(v) {
  if (v === undefined || v === null) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// ---- start ------------------------------------------------------------------------

document.getElementById('token').value = params.get('token') || '';
setStatus('disconnected');
connect();
loadStores();
