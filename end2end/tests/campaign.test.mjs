// The console's main flow in a real browser: an operator drafts a campaign
// for consented contacts and submits it; the same operator is not offered
// approval and the server refuses it when asked directly; an approver
// approves; the messages reach the sandbox and their delivered/read states
// appear in the live progress view; a contact who replied STOP shows as
// blocked with `suppressed`. Then the contact page, the inbox (a reply
// inside the window goes; one to the person who said STOP is refused with
// the gate's reason), the dashboard, templates and the audit log with its
// CSV export. Screenshots of each page go to end2end/artifacts/.
import assert from 'node:assert/strict';
import { watchErrors } from './watch.mjs';

const TAG = 'e2e-spring';
const PEOPLE = [
  { phone: '+4791230001', name: 'Kari Nordmann' },
  { phone: '+4791230002', name: 'Ola Nordmann' },
  { phone: '+4791230003', name: 'Stine Stopp' }, // replies STOP before the campaign
];

async function consentedContact(api, person, tags) {
  const r = await api('/api/v1/contacts', {
    method: 'POST',
    body: JSON.stringify({ phone: person.phone, name: person.name, tags }),
  });
  const text = await r.text();
  assert.ok(r.status === 201 || r.status === 200, `contact ${person.phone}: ${r.status} ${text}`);
  const c = JSON.parse(text);
  const consent = await api(`/api/v1/contacts/${c.id}/consents`, {
    method: 'POST',
    body: JSON.stringify({
      channel: 'whatsapp',
      source: 'api',
      evidence: { consent_text_version: 'e2e-v1', page_url: 'https://example.com/optin' },
    }),
  });
  const consentText = await consent.text();
  assert.equal(consent.status, 201, `consent ${person.phone}: ${consentText}`);
  return c;
}

// Script errors and console errors (a hydration mismatch is reported on
// the console); a missing favicon is not one.
export async function run(ctx) {
  const { api, sandbox, waitFor, users, newPage, screenshot, signIn } = ctx;
  const contacts = [];
  for (const p of PEOPLE) contacts.push(await consentedContact(api, p, [TAG]));
  const [kari, , stine] = contacts;

  // Stine replies STOP (as Twilio would deliver it) and is suppressed.
  const stop = await sandbox('/sandbox/inbound', {
    method: 'POST',
    body: JSON.stringify({ from: stine.phone, body: 'STOP' }),
  });
  assert.ok(stop.ok, `sandbox inbound: ${stop.status}`);
  await waitFor(async () => {
    const r = await api(`/api/v1/contacts/${stine.id}`);
    return (await r.json()).suppressed?.whatsapp === true;
  }, 'the STOP to suppress the contact');

  // --- The operator drafts and submits.
  const op = await newPage({ viewport: { width: 1280, height: 900 } });
  const opErrors = watchErrors(op);
  await op.goto('/login');
  await screenshot(op, 'login');
  await signIn(op, users.operator);
  assert.equal(new URL(op.url()).pathname, '/');
  await op.waitForSelector('#sends-total');

  await op.goto('/campaigns/new');
  await op.selectOption('#template', 'task_reminder');
  await Promise.all([op.waitForURL(/template=task_reminder/), op.click('text=Use this template')]);
  await op.fill('#name', 'Spring check-in');
  await op.check('input[name=audience][value=tags]');
  await op.fill('#tags', TAG);
  // task_name: fixed text; due_time: fixed text.
  await op.selectOption('#var-source-0', 'value');
  await op.fill('#var-value-0', 'your spring check-in');
  await op.selectOption('#var-source-1', 'value');
  await op.fill('#var-value-1', 'Friday 10:00');
  await op.check('input[name=schedule][value=on_approval]');
  await screenshot(op, 'campaign-draft');
  await Promise.all([
    op.waitForURL(/\/campaigns\/[0-9a-f-]{36}$/),
    op.click('text=Save draft and review'),
  ]);
  const campaignId = new URL(op.url()).pathname.split('/').pop();

  // The review: audience, samples, dry run by reason, estimated cost.
  await op.waitForSelector('#audience-size');
  assert.equal((await op.textContent('#audience-size')).trim(), '3');
  assert.equal((await op.textContent('#would-pass')).trim(), '2');
  assert.equal((await op.textContent('#would-block')).trim(), '1');
  const blockedRow = op.locator('#dry-run-blocked tr[data-reason=suppressed] td.num');
  assert.equal((await blockedRow.textContent()).trim(), '1');
  assert.match(await op.textContent('#samples'), /Reminder: your spring check-in is due at Friday 10:00\./);
  assert.match(await op.textContent('#estimated-cost'), /USD/);
  await op.click('#submit-campaign');
  await op.waitForSelector('#self-approval-note');
  await screenshot(op, 'campaign-review');

  // The author is not offered approval...
  assert.equal(await op.locator('#approve-campaign').count(), 0, 'no approve button for the author');
  // ...and the server refuses it when asked directly.
  const direct = await op.evaluate(async (id) => {
    const csrf = document.querySelector('input[name=csrf]').value;
    const r = await fetch('/_sf/campaign_approve', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, id }).toString(),
    });
    return { status: r.status, body: await r.text() };
  }, campaignId);
  assert.equal(direct.status, 403, `operator approving directly: ${JSON.stringify(direct)}`);

  // --- An approver approves.
  const ap = await newPage({ viewport: { width: 1280, height: 900 } });
  const apErrors = watchErrors(ap);
  await signIn(ap, users.approver);
  await ap.goto(`/campaigns/${campaignId}`);
  await ap.waitForSelector('#approve-campaign');
  await screenshot(ap, 'campaign-approval');
  await ap.click('#approve-campaign');
  await ap.waitForSelector('#progress');

  // The messages reach the sandbox...
  const toUs = (m) => m.template_name === 'task_reminder' && contacts.some((c) => m.to.endsWith(c.phone));
  const sent = await waitFor(async () => {
    const all = await (await sandbox('/sandbox/messages')).json();
    const ours = (Array.isArray(all) ? all : all.messages || []).filter(toUs);
    return ours.length >= 2 ? ours : null;
  }, 'two campaign messages in the sandbox');
  assert.equal(sent.length, 2);
  assert.ok(!sent.some((m) => m.to.endsWith(stine.phone)), 'nothing to the person who said STOP');

  // ...and their delivered/read states show in the live progress view
  // (polled by the hydrated page, no reload).
  await ap.waitForFunction(() => {
    const read = document.querySelector('#by-state [data-state=read] dd');
    return read && read.textContent.trim() === '2';
  }, null, { timeout: 30000 });
  await ap.waitForSelector('#by-block-reason tr[data-reason=suppressed]');
  assert.equal((await ap.textContent('#by-block-reason tr[data-reason=suppressed] td.num')).trim(), '1');
  assert.match(await ap.textContent('#read-rate'), /100\.0 %/);
  await screenshot(ap, 'campaign-progress');

  // --- The contact who said STOP: suppressed (origin keyword), and the
  // campaign's message to them blocked with `suppressed`.
  await op.goto(`/contacts/${stine.id}`);
  await op.waitForSelector('#timeline');
  const standing = await op.textContent('.standing[data-channel=whatsapp] .suppression-state');
  assert.match(standing, /suppressed/);
  assert.match(standing, /origin: keyword/);
  assert.equal(await op.locator('#timeline li[data-state=blocked][data-reason=suppressed]').count(), 1);
  await screenshot(op, 'contact');

  // --- The inbox: Kari writes; the operator replies inside the window.
  const hello = await sandbox('/sandbox/inbound', {
    method: 'POST',
    body: JSON.stringify({ from: kari.phone, body: 'Hi! Can I come at 11 instead?' }),
  });
  assert.ok(hello.ok);
  await waitFor(async () => {
    const r = await api(`/api/v1/contacts/${kari.id}`);
    return (await r.json()).windows?.whatsapp?.in_window === true;
  }, 'the inbound message to open the window');
  await op.goto('/inbox');
  await op.waitForSelector(`#threads a[href="/inbox/${kari.id}"]`);
  await op.goto(`/inbox/${kari.id}`);
  await op.waitForSelector('#window-state.open');
  await op.fill('#text', 'Of course, 11:00 works. See you then!');
  await op.click('text=Send reply');
  await op.waitForSelector('#reply-box .notice.ok');
  await op.waitForFunction(() => document.querySelector('#chat').textContent.includes('11:00 works'));
  await screenshot(op, 'inbox');

  // A reply to the person who said STOP is refused, with the gate's reason.
  await op.goto(`/inbox/${stine.id}`);
  await op.waitForSelector('#window-state.open');
  await op.fill('#text', 'Sorry to see you go!');
  await op.click('text=Send reply');
  await op.waitForSelector('#reply-box .notice.error');
  assert.match(await op.textContent('#reply-box .notice.error'), /suppressed/);

  // --- Templates, the audit log (filtered) and its CSV export.
  await op.goto('/templates');
  await op.waitForSelector('table.data');
  assert.match(await op.textContent('table.data'), /task_reminder/);
  await screenshot(op, 'templates');

  await op.goto(`/audit?campaign=${campaignId}`);
  await op.waitForSelector('#audit');
  assert.ok(await op.locator('#audit tr[data-decision=block]').count() >= 1);
  await screenshot(op, 'audit');
  const csv = await op.evaluate(async (id) => {
    const r = await fetch(`/audit/export.csv?campaign=${id}&reason=suppressed`);
    return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
  }, campaignId);
  assert.equal(csv.status, 200);
  assert.match(csv.type, /text\/csv/);
  assert.match(csv.text, /suppressed/);

  // The approval is in the staff audit trail with who did it.
  await op.goto('/audit');
  await op.waitForSelector('#staff-actions');
  assert.match(await op.textContent('#staff-actions'), new RegExp(users.approver.email));

  // The dashboard, now that something was sent.
  await op.goto('/');
  await op.waitForSelector('#sends-by-state [data-state=read]');
  await screenshot(op, 'dashboard');

  // A phone-sized screen reads the campaign page too.
  const phone = await newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  await signIn(phone, users.approver);
  await phone.goto(`/campaigns/${campaignId}`);
  await phone.waitForSelector('#progress');
  await screenshot(phone, 'campaign-progress-phone');

  assert.deepEqual(opErrors, [], 'no script errors (operator)');
  assert.deepEqual(apErrors, [], 'no script errors (approver)');
}
