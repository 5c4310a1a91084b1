// The console shell is rendered on the server and hydrated in the browser.
import assert from 'node:assert/strict';

export async function run({ newPage, screenshot }) {
  const page = await newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const res = await page.goto('/');
  assert.equal(res.status(), 200);
  await page.waitForFunction(() => document.querySelector('body') !== null);
  await screenshot(page, 'home');
  assert.deepEqual(errors, [], 'no script errors while hydrating');
}
