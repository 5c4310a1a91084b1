// Erasure that keeps the STOP, in the console: an admin erases a person from
// their contact page with a reason and a confirmation, and the page then says
// they were erased and shows nothing of them; the number brought back through
// the API is held until the number itself says START. An operator sees no
// such action, and the server function refuses them even when they craft
// the request.
import assert from 'node:assert/strict';

const PERSON = { phone: '+4791238101', name: 'Erin Erasable' };

export async function run(ctx) {
  const { api, staff, users, newPage, signIn, screenshot } = ctx;
  const created = await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: PERSON.phone, name: PERSON.name, attributes: { email: 'erin@example.com' } }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  const { id } = await created.json();
  const consent = await api(`/api/v1/contacts/${id}/consents`, {
    method: 'POST',
    body: JSON.stringify({ channel: 'whatsapp', source: 'api', evidence: { consent_text_version: 'v1', ip: '203.0.113.81', user_agent: 'ErinPhone/1.0' } }),
  });
  assert.equal(consent.status, 201, await consent.clone().text());

  // An operator: no erase action on the page, and a crafted call is refused.
  const opPage = await newPage({ viewport: { width: 1280, height: 1000 } });
  await signIn(opPage, users.operator);
  await opPage.goto(`/contacts/${id}`);
  await opPage.waitForSelector('#standing');
  assert.equal(await opPage.$('#erase-contact'), null, 'an operator is not offered the erasure');
  const op = await staff(users.operator);
  const refused = await op.call('contact_erase', { csrf: op.csrf, id, reason: 'crafted', confirm: 'on' });
  await refused.arrayBuffer();
  assert.equal(refused.status, 403, 'the server refuses an operator');
  const still = await (await api(`/api/v1/contacts/${id}`)).json();
  assert.equal(still.contact.phone, PERSON.phone, 'nothing was erased');

  // An admin: the action, a reason and the confirmation, then the erased page.
  const page = await newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await signIn(page, users.admin);
  await page.goto(`/contacts/${id}`);
  await page.waitForSelector('#erase-contact');
  assert.match(await page.textContent('main'), new RegExp(PERSON.name));
  await page.click('#erase-contact summary');
  await page.fill('#erase-reason', 'Erasure request by email, ticket 4711');
  await page.check('#erase-confirm');
  await screenshot(page, 'erasure-form');
  await page.click('#erase-contact button[type=submit]');
  await page.waitForSelector('#erased-notice', { timeout: 20000 });
  const main = await page.textContent('main');
  for (const gone of [PERSON.name, PERSON.phone, 'erin@example.com', '203.0.113.81', 'ErinPhone']) {
    assert.ok(!main.includes(gone), `the page no longer shows ${gone}`);
  }
  assert.match((await page.textContent('#contact-phone')).trim(), /^hash:[0-9a-f]{64}#/);
  assert.equal(await page.$('#erase-contact'), null, 'nothing left to erase');
  assert.equal(await page.$('#edit-contact'), null, 'nothing left to edit');
  await screenshot(page, 'erasure-done');

  // The contacts list and the audit log still answer.
  for (const path of ['/contacts', '/audit', `/inbox/${id}`]) {
    const res = await page.goto(path);
    assert.ok(res.status() < 400, `${path}: ${res.status()}`);
  }
  const listed = await page.textContent('main');
  assert.ok(!listed.includes(PERSON.phone), 'the list does not show the number');

  // The number brought back through the API: its consent waits for the number's own START.
  const again = await api('/api/v1/contacts', { method: 'POST', body: JSON.stringify({ phone: PERSON.phone }) });
  assert.equal(again.status, 201);
  const againId = (await again.json()).id;
  const held = await api(`/api/v1/contacts/${againId}/consents`, {
    method: 'POST',
    body: JSON.stringify({ channel: 'whatsapp', source: 'api', evidence: { consent_text_version: 'v1', ip: '203.0.113.82', user_agent: 'x' } }),
  });
  assert.equal(held.status, 202, await held.clone().text());
  assert.deepEqual(errors, [], 'no script errors');
}
