// The HTTP API reference as a developer reads it: /api/docs lists every operation of
// /api/openapi.json (OpenAPI 3.1), grouped, with no script on the page; both need no key.
import assert from 'node:assert/strict';

export async function run(ctx) {
  const { newPage, screenshot, baseURL } = ctx;
  const res = await fetch(`${baseURL}/api/openapi.json`);
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.match(doc.openapi, /^3\.1/);
  const operations = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
      if (item[method]) operations.push(`${method.toUpperCase()} ${path}`);
    }
  }
  assert.ok(operations.includes('POST /api/v1/messages'));
  assert.ok(doc.components.schemas.InteractiveSpec, 'the buttons-and-lists request type is described');

  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const answer = await page.goto('/api/docs');
  assert.equal(answer.status(), 200);
  const csp = answer.headers()['content-security-policy'] || '';
  assert.ok(csp.length > 0, 'the page carries a CSP');
  assert.equal(await page.$$eval('script', (s) => s.length), 0, 'no script on the reference page');
  const text = await page.textContent('body');
  for (const op of operations) {
    const [method, path] = op.split(' ');
    assert.ok(text.includes(path), `${op} on the page`);
    assert.ok(text.includes(method), `${method} on the page`);
  }
  await screenshot(page, 'api-docs');
}
