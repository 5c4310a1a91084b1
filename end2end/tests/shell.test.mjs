// The console is rendered on the server and hydrated in the browser; with
// no session, its front page sends the browser to the sign-in page.
import assert from 'node:assert/strict';

export async function run({ newPage, screenshot }) {
  const page = await newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  const res = await page.goto('/');
  assert.equal(res.status(), 200);
  // A script-src Content-Security-Policy with this response's nonce, and
  // hydration works under it (no violation, no script error).
  const csp = (await res.allHeaders())['content-security-policy'] || '';
  const nonce = (csp.match(/'nonce-([^']+)'/) || [])[1];
  assert.ok(nonce, `a nonce in the CSP: ${csp}`);
  assert.match(csp, /script-src 'self' 'nonce-/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.ok(!/script-src[^;]*unsafe-inline/.test(csp), csp);
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.equal(new URL(page.url()).searchParams.get('next'), '/');
  await page.waitForSelector('#email');
  await screenshot(page, 'home');
  assert.deepEqual(errors, [], 'no script errors while hydrating');
  assert.deepEqual(violations, [], 'no Content-Security-Policy violations');
  // The hydration script carries the nonce.
  const scripts = await page.$$eval('script', (all) => all.map((s) => s.nonce || s.getAttribute('nonce') || ''));
  assert.ok(scripts.length > 0 && scripts.every((n) => n.length > 0), `every script has the nonce: ${JSON.stringify(scripts)}`);
}
