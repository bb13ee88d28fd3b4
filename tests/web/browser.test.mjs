// The browser half of tests/web/run.sh: headless Debian chromium, driven by
// puppeteer-core, checks mkweb's page against the heater and camera examples
// that run.sh started (the DOM contract is in docs/mkweb.md).
//
// Env (from run.sh): MKWEB_URL (http://127.0.0.1:PORT/), MKWEB_TOKEN, MK (a JSON
// array: mk with its --connect options, for the checks made beside the
// browser), CHROMIUM (the browser to launch), CHROME_PROFILE (a scratch
// directory), SCREENSHOT_DIR (where mkweb.png and mkweb-camera.png go).
//
// Prints "ok: ..." per check; the first failed check ends the run (exit 1)
// with what the page showed. Every wait is bounded.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run tests/web/run.sh)`);
  return v;
};
const url = env('MKWEB_URL');
const token = env('MKWEB_TOKEN');
const mk = JSON.parse(env('MK'));
const shots = env('SCREENSHOT_DIR');
const WAIT = 10000;  // ms for any one condition

const run = promisify(execFile);
// mkGet ITEM: mk get's stdout ("setpoint: 42.50 degC").
async function mkGet(item) {
  const { stdout } = await run(mk[0], [...mk.slice(1), 'get', item], { timeout: 10000 });
  return stdout.trim();
}
// mkSet ITEM=VALUE through mk, beside the browser.
async function mkSet(assignment) {
  await run(mk[0], [...mk.slice(1), 'set', assignment], { timeout: 10000 });
}
// mkSetError ITEM=VALUE: mk's message for a SET the daemon refuses.
async function mkSetError(assignment) {
  try {
    await run(mk[0], [...mk.slice(1), 'set', assignment], { timeout: 10000 });
  } catch (e) {
    if (e.code === 1) return `${e.stdout}${e.stderr}`.trim();
    throw e;
  }
  throw new Error(`mk set ${assignment} succeeded; the test expected the daemon to refuse it`);
}
// until WHAT FN: retries FN (async, truthy = done) every 100 ms for WAIT ms.
async function until(what, fn, ms = WAIT) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const ok = (what) => console.log(`ok: ${what}`);
let page;

// text SELECTOR: the trimmed text of the first match, or null.
const text = (sel) => page.$eval(sel, (e) => e.textContent.trim()).catch(() => null);
// waitText WHAT SELECTOR REGEX: waits until SELECTOR's text matches; returns it.
async function waitText(what, sel, re, ms = WAIT) {
  return until(`${what} (${sel} to match ${re}; it shows ${JSON.stringify(await text(sel))})`, async () => {
    const t = await text(sel);
    return t !== null && re.test(t) ? t : null;
  }, ms);
}
const row = (item) => `tr[data-item="${item}"]`;
const form = (item) => `form.set[data-item="${item}"]`;

// setThroughForm ITEM VALUE: types VALUE into the item's control and submits.
async function setThroughForm(item, value) {
  const control = `${form(item)} [name=value]`;
  await page.$eval(control, (e) => { e.value = ''; });
  await page.type(control, String(value));
  await page.click(`${form(item)} button[type=submit]`);
}

const launchArgs = ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--window-size=1100,800'];
if (process.getuid && process.getuid() === 0) launchArgs.push('--no-sandbox');  // chromium refuses root otherwise
const browser = await puppeteer.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  userDataDir: env('CHROME_PROFILE'),
  args: launchArgs,
  defaultViewport: { width: 1100, height: 800 },
  protocolTimeout: 20000,
});
let status = 0;
const browserErrors = [];
try {
  page = await browser.newPage();
  page.on('pageerror', (e) => browserErrors.push(`page error: ${e.message}`));
  // Failed loads are not script errors: the favicon's 404 and the refused
  // SET's 422 are expected and show in the console as such.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) browserErrors.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(WAIT);

  await page.goto(url, { waitUntil: 'load' });
  // The token: the page's #token field if it has one, else ?token= in the URL.
  if (await page.$('#token')) {
    await page.type('#token', token);
    await page.$eval('#token', (e) => e.dispatchEvent(new Event('change', { bubbles: true })));
    ok('the page has a #token field; the token is typed into it');
  } else {
    await page.goto(`${url}?token=${encodeURIComponent(token)}`, { waitUntil: 'load' });
    ok('no #token field: the token goes in ?token=');
  }
  await waitText('#status to say connected', '#status', /^connected$/i);
  ok('#status says connected');

  // 1. The store list.
  await page.waitForSelector('#stores li[data-store="heater"]');
  await page.waitForSelector('#stores li[data-store="camera"]');
  ok('#stores lists heater and camera');

  // 2. The heater's items, formatted, with units.
  await page.click('#stores li[data-store="heater"]');
  for (const key of ['temperature', 'setpoint', 'power', 'mode', 'status']) {
    await page.waitForSelector(row(`heater.${key}`));
  }
  ok('choosing heater shows a row per item');
  const t0 = await waitText('the temperature', `${row('heater.temperature')} .value`, /^-?\d+\.\d\d$/);
  const units = await text(`${row('heater.temperature')} .units`);
  if (units !== 'degC') throw new Error(`temperature .units shows ${JSON.stringify(units)}, want degC`);
  ok(`temperature shows ${t0} degC (format %.2f, units from the catalog)`);
  if (await page.$(form('heater.temperature'))) throw new Error('read-only heater.temperature has a SET form');
  ok('read-only temperature has no SET form');

  // 3. Controls match the item types.
  const sp = await page.$eval(`${form('heater.setpoint')} [name=value]`,
    (e) => ({ tag: e.tagName, type: e.type, min: e.min, max: e.max }));
  if (sp.tag !== 'INPUT' || sp.type !== 'number' || Number(sp.min) !== -50 || Number(sp.max) !== 150) {
    throw new Error(`setpoint control is ${JSON.stringify(sp)}, want input type=number min=-50 max=150`);
  }
  ok('setpoint control: input type=number, min -50, max 150 from the catalog');
  const mode = await page.$eval(`${form('heater.mode')} [name=value]`,
    (e) => ({ tag: e.tagName, options: [...(e.options || [])].map((o) => o.textContent.trim()) }));
  if (mode.tag !== 'SELECT' || ['Manual', 'Auto', 'Standby'].some((o) => !mode.options.includes(o))) {
    throw new Error(`mode control is ${JSON.stringify(mode)}, want a select of Manual, Auto, Standby`);
  }
  ok('mode control: a menu of its enumerators');
  const power = await page.$eval(`${form('heater.power')} [name=value]`, (e) => ({ tag: e.tagName, type: e.type }));
  if (power.type !== 'checkbox') throw new Error(`power control is ${JSON.stringify(power)}, want a checkbox`);
  ok('power control: a checkbox');

  // 4. A SET through the form reaches the daemon.
  await setThroughForm('heater.setpoint', 42.5);
  const got = await until('mk get heater.setpoint to show 42.50 after the form\'s SET', async () => {
    const out = await mkGet('heater.setpoint');
    return /\b42\.50\b/.test(out) ? out : null;
  });
  ok(`SET of 42.5 through the form reached the daemon (mk get: ${got})`);
  await waitText('the setpoint row to show the new value', `${row('heater.setpoint')} .value`, /^42\.50$/);
  ok('the setpoint row shows 42.50');

  // 5. A SET of 200 shows the daemon's ValueError beside the field, verbatim.
  const refusal = await mkSetError('heater.setpoint=200');
  await setThroughForm('heater.setpoint', 200);
  let shown;
  try {
    shown = await waitText('the daemon\'s error beside the setpoint', `${row('heater.setpoint')} .error`, /\S/);
  } catch (e) {
    // An <input type=number max=150> in a form without novalidate never lets
    // the browser submit 200: say so rather than time out mutely.
    const v = await page.$eval(`${form('heater.setpoint')} [name=value]`, (c) => ({ valid: c.validity.valid,
      message: c.validationMessage, novalidate: c.form ? c.form.noValidate : null }));
    if (!v.valid && !v.novalidate) {
      throw new Error(`the browser's own form validation kept the SET of 200 from being sent ("${v.message}"): `
        + 'the form needs novalidate so that the daemon\'s error is shown beside the field');
    }
    throw e;
  }
  // mk prints the daemon's text after its own prefix; the page must show that text.
  if (!shown.includes('200') || !refusal.includes(shown.replace(/^ValueError:\s*/, ''))) {
    throw new Error(`the page shows ${JSON.stringify(shown)}; mk set heater.setpoint=200 says ${JSON.stringify(refusal)}`);
  }
  ok(`SET of 200: the page shows the daemon's error "${shown}"`);
  if (!/\b42\.50\b/.test(await mkGet('heater.setpoint'))) throw new Error('the refused SET changed the setpoint');
  ok('the refused SET left the daemon at 42.50');
  await page.$eval(row('heater.setpoint'), (e) => e.scrollIntoView({ block: 'center' }));
  await page.screenshot({ path: path.join(shots, 'mkweb.png') });
  ok(`screenshot ${path.join(shots, 'mkweb.png')}`);

  // 6. A good SET clears the error.
  await setThroughForm('heater.setpoint', 45);
  await until('the error to clear after a good SET', async () => (await text(`${row('heater.setpoint')} .error`)) === ''
    || (await text(`${row('heater.setpoint')} .error`)) === null);
  ok('a good SET clears the error');

  // 7. Live updates, made outside the browser.
  await mkSet('heater.setpoint=30');
  await waitText('the setpoint row to follow mk set', `${row('heater.setpoint')} .value`, /^30\.00$/);
  ok('mk set heater.setpoint=30 shows up in the page without a reload');
  await mkSet('heater.power=On');
  const seen = new Set([await text(`${row('heater.temperature')} .value`)]);
  const time0 = await text(`${row('heater.temperature')} .time`);
  await until('the temperature to change twice while the heater works', async () => {
    seen.add(await text(`${row('heater.temperature')} .value`));
    return seen.size >= 3;
  });
  const time1 = await until(`temperature .time to move on from ${time0}`, async () => {
    const t = await text(`${row('heater.temperature')} .time`);
    return t && t !== time0 ? t : null;
  });
  ok(`temperature updates live: ${[...seen].join(' -> ')}; .time ${time0} -> ${time1}`);

  // 8. The camera's frame: a greyscale canvas with an image in it.
  await page.click('#stores li[data-store="camera"]');
  const canvas = 'canvas[data-item="camera.frame"]';
  await page.waitForSelector(canvas);
  const px = await until('the camera frame to be drawn (non-uniform pixels)', () => page.$eval(canvas, (c) => {
    if (!c.width || !c.height) return null;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lo = 255, hi = 0, grey = true;
    for (let i = 0; i < d.length; i += 4) {
      lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]);
      if (d[i] !== d[i + 1] || d[i] !== d[i + 2]) grey = false;
    }
    return hi > lo ? { w: c.width, h: c.height, lo, hi, grey } : null;
  }));
  if (!px.grey) throw new Error('the camera canvas is not greyscale');
  ok(`camera frame drawn ${px.w}x${px.h}, grey levels ${px.lo}..${px.hi}`);
  await page.$eval(canvas, (e) => e.scrollIntoView({ block: 'center' }));
  await page.screenshot({ path: path.join(shots, 'mkweb-camera.png') });
  ok(`screenshot ${path.join(shots, 'mkweb-camera.png')}`);

  if (browserErrors.length) throw new Error(`the page reported errors:\n  ${browserErrors.join('\n  ')}`);
  ok('no script errors in the page');
} catch (e) {
  status = 1;
  console.error(`FAIL: ${e.message}`);
  if (browserErrors.length) console.error(browserErrors.join('\n'));
  if (page) {
    const failed = path.join(shots, 'mkweb-failed.png');
    await page.screenshot({ path: failed }).then(() => console.error(`the page at the failure: ${failed}`), () => {});
  }
} finally {
  await browser.close();
}
process.exit(status);
