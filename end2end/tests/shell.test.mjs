// The console is rendered on the server and hydrated in the browser; with
// no session, its front page sends the browser to the sign-in page.
import assert from 'node:assert/strict';

export async function run({ newPage, screenshot }) {
  const page = await newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const res = await page.goto('/');
  assert.equal(res.status(), 200);
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.equal(new URL(page.url()).searchParams.get('next'), '/');
  await page.waitForSelector('#email');
  await screenshot(page, 'home');
  assert.deepEqual(errors, [], 'no script errors while hydrating');
}
