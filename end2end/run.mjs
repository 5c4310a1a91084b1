// Browser tests for Heimdall: starts the real `heimdall serve` (with its
// in-process sandbox) on a free port with a fresh SQLite database, creates
// staff accounts with the CLI, and runs every `tests/*.test.mjs` file in
// Debian's Chromium (never a downloaded browser). Screenshots go to
// `end2end/artifacts/`.
//
// Each test file exports `async function run(ctx)` where ctx is
//   { browser, newPage(opts), baseURL, sandboxURL, apiKey, users, artifacts,
//     screenshot(page, name), api(path, init), sandbox(path, init), waitFor(fn, what, ms),
//     staff(user), signIn(page, user) }
// and `users` is { operator, approver, admin } each { email, password }.
// `staff(user)` signs in over HTTP and returns { cookie, csrf, call(fn, params, init) }
// for calling the console's server functions (`/_sf/<fn>`) directly, as a
// browser page of Heimdall would (same Origin, session cookie, CSRF token).
// `signIn(page, user)` signs in through the sign-in page.
// Env: HEIMDALL_BIN (default ../target/debug/heimdall), CHROMIUM (default /usr/bin/chromium),
// HEIMDALL_E2E_ONLY (substring filter on file names).

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(process.env.HEIMDALL_BIN || join(here, '..', 'target', 'debug', 'heimdall'));
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const artifacts = join(here, 'artifacts');
mkdirSync(artifacts, { recursive: true });

const data = mkdtempSync(join(tmpdir(), 'heimdall-e2e-'));
const apiKey = 'e2e-' + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
const env = {
  ...process.env,
  // HEIMDALL_E2E_DATABASE_URL / HEIMDALL_E2E_REDIS_URL run the same tests on
  // PostgreSQL and Redis (the database must exist and be empty).
  HEIMDALL_DATABASE_URL: process.env.HEIMDALL_E2E_DATABASE_URL || `sqlite://${data}/heimdall.db?mode=rwc`,
  HEIMDALL_DATA_DIR: join(data, 'data'),
  HEIMDALL_API_KEY: apiKey,
  // The browser tests set up forms and contacts through the API.
  HEIMDALL_API_KEY_SCOPES: 'send,reminders,schedules,contacts:read,contacts:write,consents:read,consents:write,forms:read,forms:write',
  // Erasure (the contact page's "Erase this person") needs its key.
  HEIMDALL_ERASURE_KEY: 'e2e-erasure-' + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2) + '-0123456789abcdef',
  HEIMDALL_STATUS_STEP_MS: '150',
  HEIMDALL_RECIPIENT_PACE_SECONDS: '0',
  HEIMDALL_BIND: '127.0.0.1:0',
  RUST_LOG: process.env.RUST_LOG || 'info',
};
for (const k of ['HEIMDALL_REDIS_URL', 'TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'WHATSAPP_ACCESS_TOKEN', 'HEIMDALL_PUBLIC_URL']) delete env[k];
if (process.env.HEIMDALL_E2E_REDIS_URL) {
  env.HEIMDALL_REDIS_URL = process.env.HEIMDALL_E2E_REDIS_URL;
  env.HEIMDALL_REDIS_NAMESPACE = 'e2e' + process.pid;
}
console.log(`browser tests on ${env.HEIMDALL_DATABASE_URL.split(':')[0]}${env.HEIMDALL_REDIS_URL ? ' + redis' : ''}`);

const users = {
  operator: { email: 'operator@example.com', password: 'operator-password-1' },
  approver: { email: 'approver@example.com', password: 'approver-password-1' },
  admin: { email: 'admin@example.com', password: 'admin-password-123' },
};

function cli(args, input) {
  const r = spawnSync(bin, args, { env, input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`heimdall ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

for (const [role, u] of Object.entries(users)) {
  cli(['user', 'add', '--email', u.email, '--role', role, '--name', role[0].toUpperCase() + role.slice(1)], u.password + '\n');
}

const server = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
let log = '';
const started = new Promise((ok, fail) => {
  const timer = setTimeout(() => fail(new Error('heimdall did not start within 60 s:\n' + log)), 60000);
  const onData = (chunk) => {
    log += chunk.toString();
    const m = log.match(/listening on (http:\/\/[0-9.]+:\d+)/);
    const s = log.match(/sandbox=(http:\/\/[0-9.]+:\d+)/);
    if (m && s) { clearTimeout(timer); ok({ baseURL: m[1], sandboxURL: s[1] }); }
  };
  server.stdout.on('data', onData);
  server.stderr.on('data', onData);
  server.on('exit', (code) => fail(new Error(`heimdall exited with ${code}:\n${log}`)));
});

let failures = 0;
let browser;
try {
  const { baseURL, sandboxURL } = await started;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const api = (path, init = {}) => fetch(baseURL + path, {
    ...init,
    headers: { 'X-API-Key': apiKey, 'Content-Type': 'application/json', ...(init.headers || {}) },
  });
  const sandbox = (path, init = {}) => fetch(sandboxURL + path, {
    ...init,
    headers: { 'Content-Type': 'application/json', ...(init.headers || {}) },
  });
  const waitFor = async (fn, what, ms = 20000) => {
    const deadline = Date.now() + ms;
    let last;
    while (Date.now() < deadline) {
      try { last = await fn(); if (last) return last; } catch (e) { last = e; }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what} (last: ${last})`);
  };
  const form = (params) => new URLSearchParams(params).toString();
  const staff = async (user) => {
    const res = await fetch(baseURL + '/_sf/login', {
      method: 'POST', redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: baseURL },
      body: form({ email: user.email, password: user.password }),
    });
    if (res.status !== 200) throw new Error(`sign-in of ${user.email} failed: ${res.status} ${await res.text()}`);
    const cookie = (res.headers.get('set-cookie') || '').split(';')[0];
    const call = (fn, params = {}, init = {}) => fetch(baseURL + '/_sf/' + fn, {
      method: 'POST', redirect: 'manual', ...init,
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: baseURL, Cookie: cookie, ...(init.headers || {}) },
      body: form(params),
    });
    const me = await (await call('current_staff')).json();
    return { cookie, csrf: me.csrf, me, call };
  };
  const signIn = async (page, user) => {
    await page.goto('/login');
    await page.fill('#email', user.email);
    await page.fill('#password', user.password);
    await Promise.all([
      page.waitForURL((u) => !u.pathname.startsWith('/login'), { timeout: 20000 }),
      page.click('button[type=submit]'),
    ]);
  };
  const ctxBase = {
    browser, baseURL, sandboxURL, apiKey, users, artifacts, api, sandbox, waitFor, staff, signIn,
    // A page whose navigations wait until the console has hydrated (the
    // app marks <html data-hydrated>), so a test never clicks a
    // server-rendered button before its handler exists. Pages without
    // JavaScript, and pages that are not the console, skip the wait.
    newPage: async (opts = {}) => {
      const page = await (await browser.newContext({ baseURL, ...opts })).newPage();
      if (opts.javaScriptEnabled === false) return page;
      const goto = page.goto.bind(page);
      page.goto = async (url, options) => {
        const res = await goto(url, options);
        const isConsole = await page.evaluate(() => !!document.querySelector('script[type=module], link[rel=modulepreload]')).catch(() => false);
        if (isConsole) await page.waitForSelector('html[data-hydrated]', { state: 'attached', timeout: 20000 });
        return res;
      };
      return page;
    },
    screenshot: (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true }),
  };
  const only = process.env.HEIMDALL_E2E_ONLY || '';
  const files = readdirSync(join(here, 'tests')).filter((f) => f.endsWith('.test.mjs') && f.includes(only)).sort();
  if (files.length === 0) throw new Error('no browser tests found');
  for (const f of files) {
    const started = Date.now();
    try {
      const mod = await import(join(here, 'tests', f));
      await mod.run(ctxBase);
      console.log(`ok   ${f} (${Date.now() - started} ms)`);
    } catch (e) {
      failures++;
      console.log(`FAIL ${f}: ${e.stack || e}`);
    }
  }
} catch (e) {
  failures++;
  console.log(`FAIL harness: ${e.stack || e}`);
} finally {
  if (browser) await browser.close();
  server.kill('SIGTERM');
  rmSync(data, { recursive: true, force: true });
}
if (failures) {
  console.log(`\n${failures} browser test file(s) failed; server log follows:\n${log.slice(-8000)}`);
  process.exit(1);
}
console.log('all browser tests passed');
