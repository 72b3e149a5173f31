// The portal "Min plan" in a real headless browser (Debian chromium, driven by
// playwright-core), against the real `paraply demo` binary on a fresh SQLite file, with the
// patients and staff logging in at the independent OpenID providers of tests/idp
// (oidc-provider): the portal's login is theirs, and the clinician's side of every flow is
// checked through the FHIR API with a staff token from the region's provider.
//
// Without JavaScript, the patient Tolvan: logs in, sees the plan, accepts a time by keyboard
// only (the clinician sees it booked), asks for another time (the clinician reads the wish),
// adds a goal, writes to a fixed contact (the clinician answers; the unread count shows),
// gives Elsa access (she logs in and sees his plan), takes it back (she is refused), reads
// the access log, downloads the PDF (holding his contacts), switches language, logs out.
// Then axe-core's WCAG 2.1 A/AA rules on every page at phone and desktop width in every
// language, no sideways scrolling at 400 % zoom, and screenshots in target/browser/.
//
// Usage: node tests/browser/portal.mjs [path/to/paraply]   (default target/debug/paraply)

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, request } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');
const BINARY = resolve(process.argv[2] ?? join(ROOT, 'target', 'debug', 'paraply'));
const CHROMIUM = process.env.PARAPLY_CHROMIUM ?? '/usr/bin/chromium';
const AXE = readFileSync(join(HERE, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');
const SHOTS = join(ROOT, 'target', 'browser');
const TESTS_REDIRECT = 'http://127.0.0.1/paraply-tests/callback';

let failures = 0;
function check(condition, message) {
  if (condition) {
    console.log(`  ok   ${message}`);
  } else {
    failures += 1;
    console.log(`  FAIL ${message}`);
  }
}

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** The citizen, region and kommun providers of tests/idp, trusting the portal's callback. */
async function startIdp(root, dir) {
  const child = spawn('node', [
    join(ROOT, 'tests', 'idp', 'idp.mjs'),
    '--issuers', 'citizen:0,region:0,kommun:0',
    '--fhir-base', `${root}/fhir`,
    '--redirect', `${root}/auth/callback`,
    '--keys', join(dir, 'keys.json'),
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  const issuers = [];
  const lines = createInterface({ input: child.stdout });
  await new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error('the test IdP did not start')), 60000);
    lines.on('line', (line) => {
      const found = /^issuer (\S+) ready$/.exec(line);
      if (found) issuers.push(found[1]);
      if (issuers.length === 3) { clearTimeout(timer); done(); }
    });
  });
  return { child, citizen: issuers[0], region: issuers[1], kommun: issuers[2] };
}

async function startParaply(idp, port, dir) {
  const root = `http://127.0.0.1:${port}`;
  if (!idp) return startBinary(port, dir, []);
  const config = join(dir, 'paraply.toml');
  writeFileSync(config, `
[[issuer]]
issuer = "${idp.citizen}"
audience = "${root}/fhir"
kind = "citizen"

[[issuer]]
issuer = "${idp.region}"
audience = "${root}/fhir"
kind = "staff"
huvudman = "Organization/demo-region"

[portal]
issuer = "${idp.citizen}"
client_id = "paraply-portal"
client_secret = "paraply-portal-secret"
public_url = "${root}"
accessibility_contact = "tillganglighet@paraply.test"
`);
  return startBinary(port, dir, ['--config', config]);
}

/** `paraply demo` on a fresh SQLite file in `dir`, ready to answer. */
async function startBinary(port, dir, extra) {
  const root = `http://127.0.0.1:${port}`;
  const child = spawn(BINARY, [
    'demo', '--listen', `127.0.0.1:${port}`, '--database', `sqlite://${join(dir, 'paraply.db')}`,
    ...extra,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  for (let i = 0; i < 300; i += 1) {
    try {
      if ((await fetch(`${root}/readyz`)).ok) return child;
    } catch { /* not listening yet */ }
    if (child.exitCode !== null) break;
    await new Promise((done) => setTimeout(done, 200));
  }
  child.kill('SIGKILL');
  throw new Error(`paraply demo did not become ready:\n${log}`);
}

/** A staff member's access token: the browserless code + PKCE login of tests/idp/README.md. */
async function staffToken(issuer, hint, fhirBase) {
  const api = await request.newContext();
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  let url = `${issuer}/auth?${new URLSearchParams({
    client_id: 'paraply-tests', response_type: 'code', redirect_uri: TESTS_REDIRECT,
    scope: 'openid user/*.cruds', state: 's', code_challenge: challenge,
    code_challenge_method: 'S256', login_hint: hint, resource: fhirBase,
  })}`;
  for (let i = 0; i < 10 && !url.startsWith(TESTS_REDIRECT); i += 1) {
    const response = await api.get(url, { maxRedirects: 0 });
    url = new URL(response.headers().location, url).toString();
  }
  const code = new URL(url).searchParams.get('code');
  const tokens = await api.post(`${issuer}/token`, {
    headers: { authorization: `Basic ${Buffer.from('paraply-tests:paraply-tests-secret').toString('base64')}` },
    form: { grant_type: 'authorization_code', code, redirect_uri: TESTS_REDIRECT, code_verifier: verifier },
  });
  const body = await tokens.json();
  await api.dispose();
  return body.access_token;
}

/** The FHIR API as the clinician's system uses it. */
function fhirClient(root, token) {
  return async (method, path, body) => {
    const response = await fetch(`${root}/fhir/${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: response.status, body: await response.json() };
  };
}

function proposedTime(id, daysAhead) {
  const start = new Date(Date.now() + daysAhead * 86400000);
  start.setUTCHours(9, 0, 0, 0);
  const end = new Date(start.getTime() + 1800000);
  return {
    resourceType: 'Appointment', id, status: 'proposed',
    meta: { profile: ['https://paraply.se/fhir/StructureDefinition/agreed-appointment'] },
    description: 'Uppföljning av patientkontraktet',
    start: start.toISOString(), end: end.toISOString(),
    participant: [
      { actor: { reference: 'Patient/demo-tolvan' }, required: 'required', status: 'needs-action' },
      { actor: { reference: 'PractitionerRole/demo-lakare-vc' }, required: 'required', status: 'accepted' },
    ],
  };
}

/** Logs `who` in at the citizen provider from the portal's own login link. */
async function logIn(page, root, who) {
  await page.goto(`${root}/`);
  await page.getByRole('link', { name: /Logga in/ }).click();
  // The test provider's account list (a real eID provider would ask for the e-ID).
  await page.locator(`button[value="${who}"]`).click();
  await page.waitForURL((url) => url.origin === root && !url.pathname.startsWith('/auth'));
}

/** Presses Tab until the focused element matches, as a keyboard user would. */
async function tabTo(page, matches, label) {
  for (let i = 0; i < 80; i += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(matches)) return true;
  }
  check(false, `Tab reaches ${label}`);
  return false;
}

async function axe(page, label) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const found = await axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
    });
    return found.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  check(result.length === 0, `axe: no WCAG 2.1 AA violation on ${label}${result.length ? `\n       ${result.join('\n       ')}` : ''}`);
}

async function patientFlows(browser, root, fhir) {
  console.log('The patient, without JavaScript:');
  const context = await browser.newContext({ javaScriptEnabled: false, locale: 'sv-SE' });
  const page = await context.newPage();
  await logIn(page, root, 'tolvan');
  check(await page.locator('h1').textContent() === 'Min plan', 'logged in, the start page is "Min plan"');
  check(await page.getByText('Plan för Tolvan Tolvansson').isVisible(), 'it is his plan');
  check(await page.getByRole('heading', { name: 'Mina fasta kontakter' }).isVisible(), 'his fixed contacts are on it');

  // The skip link first, then a keyboard-only walk: open the time, say yes, send.
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement?.textContent) === 'Hoppa till innehållet', 'the first Tab stop is the skip link');
  check(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle) !== 'none', 'focus is visible');
  await tabTo(page, () => document.activeElement?.getAttribute('href') === '/tider/browser-ja', 'the proposed time');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/tider\/browser-ja$/);
  await tabTo(page, () => document.activeElement?.id === 'answer', 'the first answer');
  await page.keyboard.press('Space');
  await tabTo(page, () => document.activeElement?.textContent === 'Skicka svar', 'the send button');
  await Promise.all([page.waitForURL(/skickat=1/), page.keyboard.press('Enter')]);
  check(await page.getByText('Ditt svar är skickat till vården.').isVisible(), 'the answer shows at once');
  const booked = await fhir('GET', 'Appointment/browser-ja');
  check(booked.body.status === 'booked', `the clinician sees the time booked (${booked.body.status})`);

  // An empty answer: the error summary links to the field.
  await page.goto(`${root}/tider/browser-annan`);
  await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Skicka svar' }).click()]);
  check((await page.title()).startsWith('Det finns ett problem'), 'a form with a mistake says so in the title');
  check(await page.locator('.error-summary a[href="#answer"]').isVisible(), 'the error summary links to the field');
  // Another time, please.
  await page.getByLabel('Jag vill ha en annan tid').check();
  await page.getByLabel('Meddelande till vården (frivilligt)').fill('Helst på förmiddagen');
  await page.getByLabel('Från och med datum').fill('2031-03-10');
  await page.getByLabel('Till och med datum').fill('2031-03-20');
  await Promise.all([page.waitForURL(/skickat=1/), page.getByRole('button', { name: 'Skicka svar' }).click()]);
  check(await page.getByText('Du har bett om en annan tid').isVisible(), 'the time says another was asked for');
  const wishes = await fhir('GET', 'AppointmentResponse?appointment=Appointment/browser-annan');
  const wish = wishes.body.entry?.[0]?.resource;
  check(wish?.participantStatus === 'tentative' && wish?.comment === 'Helst på förmiddagen',
    'the clinician reads the wish for another time');

  // A goal in his own words.
  await page.getByRole('link', { name: 'Mina mål' }).click();
  await page.getByLabel('Ditt nya mål').fill('Orka gå till kyrkan på söndagar');
  await Promise.all([page.waitForURL(/sparat=1/), page.getByRole('button', { name: 'Lägg till målet' }).click()]);
  const goals = await fhir('GET', 'Goal?patient=Patient/demo-tolvan');
  check(goals.body.entry?.some((e) => e.resource.description?.text === 'Orka gå till kyrkan på söndagar'),
    'the clinician sees the new goal');

  // A message to a fixed contact, and the answer.
  await page.getByRole('link', { name: 'Meddelanden' }).click();
  const to = await page.getByLabel('Till').inputValue();
  await page.getByLabel('Meddelande', { exact: true }).fill('Kan jag ta medicinen på kvällen?');
  await Promise.all([page.waitForURL(/skickat=1/), page.getByRole('button', { name: 'Skicka meddelandet' }).click()]);
  const inbox = await fhir('GET', `Communication?recipient=${to}&sender=Patient/demo-tolvan`);
  const question = inbox.body.entry?.[0]?.resource;
  check(question?.payload?.[0]?.contentString === 'Kan jag ta medicinen på kvällen?', 'the clinician finds the message');
  const reply = await fhir('POST', 'Communication', {
    resourceType: 'Communication', status: 'completed',
    subject: { reference: 'Patient/demo-tolvan' }, sender: { reference: to },
    recipient: [{ reference: 'Patient/demo-tolvan' }],
    inResponseTo: [{ reference: `Communication/${question?.id}` }],
    sent: new Date().toISOString(), payload: [{ contentString: 'Ja, det går bra.' }],
  });
  check(reply.status === 201, `the clinician answers (${reply.status})`);
  await page.goto(`${root}/`);
  check(await page.getByText('Olästa meddelanden: 1.').isVisible(), 'the start page counts the unread answer');
  await page.getByRole('link', { name: 'Meddelanden' }).first().click();
  check(await page.getByText('Ja, det går bra.').isVisible(), 'the answer is there to read');

  // Elsa gets access, logs in and sees his plan; then it is taken back.
  await page.getByRole('link', { name: 'Närstående' }).click();
  await page.getByLabel('Personnummer').fill('201703152387');
  await page.getByLabel('Förnamn').fill('Elsa');
  await page.getByLabel('Efternamn').fill('Svensson');
  await page.getByLabel('Relation till dig').selectOption('FRND');
  await page.getByLabel('Se min plan', { exact: true }).check();
  await Promise.all([page.waitForURL(/sparat=1/), page.getByRole('button', { name: 'Ge behörighet' }).click()]);
  check(await page.getByText('Elsa Svensson', { exact: true }).isVisible(), 'Elsa is listed with her access');
  const relative = await browser.newContext({ javaScriptEnabled: false, locale: 'sv-SE' });
  const elsa = await relative.newPage();
  await logIn(elsa, root, 'elsa');
  await elsa.goto(`${root}/`);
  check(await elsa.getByText('Du ser planen för Tolvan Tolvansson som närstående.').isVisible(), 'Elsa sees his plan as a relative');
  await Promise.all([page.waitForURL(/borttagen=1/), page.getByRole('button', { name: 'Ta bort behörigheten för Elsa Svensson' }).click()]);
  const refused = await elsa.goto(`${root}/`);
  check(refused.status() === 403, `Elsa is refused once it is taken back (${refused.status()})`);
  await relative.close();

  // Who has read the plan.
  await page.getByRole('link', { name: 'Vem har läst min plan' }).click();
  check(await page.locator('table tbody tr').count() > 0, 'the access log lists the accesses');

  // The plan as a PDF, holding his contacts.
  const pdf = await page.request.get(`${root}/plan.pdf`);
  const bytes = await pdf.body();
  check(pdf.headers()['content-type'] === 'application/pdf' && bytes.subarray(0, 5).toString() === '%PDF-', 'the plan downloads as a PDF');
  const text = spawnSync('pdftotext', ['-', '-'], { input: bytes });
  if (text.error) {
    console.log('  !!   pdftotext is missing (apt-get install poppler-utils): the PDF text was not read');
  } else {
    check(text.stdout.toString().includes('Erik Lund'), 'the PDF holds his fixed contacts');
  }

  // English, then log out.
  await page.getByLabel('Språk').selectOption('en');
  await page.getByRole('button', { name: 'Byt språk' }).click();
  check(await page.getByRole('heading', { name: 'My plan' }).isVisible() || await page.locator('html[lang="en"]').count() === 1, 'the language switches to English');
  await page.goto(`${root}/`);
  check(await page.getByRole('heading', { name: 'My named contacts' }).isVisible(), 'the plan reads in English');
  await page.getByRole('button', { name: 'Log out' }).click();
  // The portal's session is over (the provider's own single sign-on is the provider's).
  const session = await page.request.get(`${root}/auth/session`);
  check(session.status() === 401, `logging out ends the portal session (${session.status()})`);
  const again = await page.request.get(`${root}/logg`, { maxRedirects: 0 });
  check(again.status() === 303 && again.headers().location.startsWith('/auth/login'), 'the pages ask for a login again');
  await context.close();
}

async function accessibility(browser, root) {
  console.log('Accessibility (axe-core, WCAG 2.1 AA), phone and desktop, every language:');
  // The portal's CSP forbids every script, axe's too: this context alone bypasses it.
  const context = await browser.newContext({ locale: 'sv-SE', bypassCSP: true });
  const page = await context.newPage();
  await page.goto(`${root}/`);
  await axe(page, 'the landing page');
  // The check itself works: a page without its language is a violation axe must report.
  await page.evaluate(() => document.documentElement.removeAttribute('lang'));
  const broken = await page.evaluate(async () => (await axe.run(document)).violations.map((v) => v.id));
  check(broken.includes('html-has-lang'), 'axe reports a page without lang (the check can fail)');
  await logIn(page, root, 'tolvan');
  const pages = ['/', '/tider/browser-ja', '/planer/demo-sip-tolvan', '/mal', '/meddelanden', '/narstaende', '/logg', '/tillganglighet', '/finns-inte'];
  mkdirSync(SHOTS, { recursive: true });
  for (const [width, height, name] of [[375, 740, 'phone'], [1280, 900, 'desktop']]) {
    await page.setViewportSize({ width, height });
    for (const language of ['sv', 'en', 'lattlast']) {
      await page.goto(`${root}/`);
      await page.locator('#lang').selectOption(language);
      await page.locator('footer button[type="submit"]').click();
      for (const path of pages) {
        await page.goto(`${root}${path}`);
        await axe(page, `${path} (${language}, ${name})`);
        if (language === 'sv' && ['/', '/tider/browser-ja', '/planer/demo-sip-tolvan'].includes(path)) {
          const file = `${name}${path.replaceAll('/', '-').replace(/-$/, '') || '-start'}.png`;
          await page.screenshot({ path: join(SHOTS, `min-plan-${file.replace(/^-/, '')}`) });
        }
      }
    }
  }
  // The answer form showing its errors.
  await page.goto(`${root}/`);
  await page.locator('#lang').selectOption('sv');
  await page.locator('footer button[type="submit"]').click();
  await page.goto(`${root}/tider/browser-ja`);
  await page.getByRole('button', { name: 'Skicka svar' }).click();
  await axe(page, 'an answer form with errors');

  console.log('At 400 % zoom (320 CSS pixels wide):');
  await page.setViewportSize({ width: 320, height: 640 });
  for (const path of pages) {
    await page.goto(`${root}${path}`);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(wide <= 0, `${path} does not scroll sideways (${wide} px too wide)`);
  }
  await context.close();
}

/** `paraply demo` as a newcomer meets it: its own demo login, a patient and a relative. */
async function newcomer(browser) {
  console.log('The demo as a newcomer clicks it (`paraply demo`, its demo login):');
  const dir = mkdtempSync(join(tmpdir(), 'paraply-demo-'));
  const port = await freePort();
  const root = `http://127.0.0.1:${port}`;
  const demo = await startParaply(null, port, dir);
  try {
    for (const [who, expected] of [
      ['Tolvan Tolvansson', 'Plan för Tolvan Tolvansson'],
      ['Lisa Tolvansson', 'Du ser planen för Tolvan Tolvansson som närstående.'],
    ]) {
      const context = await browser.newContext({ locale: 'sv-SE' });
      const page = await context.newPage();
      const started = Date.now();
      await page.goto(`${root}/`);
      await page.getByRole('link', { name: /Logga in/ }).click();
      await page.getByRole('link', { name: new RegExp(who) }).first().click();
      await page.waitForURL(`${root}/`);
      check(await page.getByText(expected).isVisible(), `${who} sees the plan after two clicks (${Date.now() - started} ms)`);
      await context.close();
    }
  } finally {
    demo.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'paraply-browser-'));
  const port = await freePort();
  const root = `http://127.0.0.1:${port}`;
  const idp = await startIdp(root, dir);
  let paraply;
  let browser;
  try {
    paraply = await startParaply(idp, port, dir);
    const token = await staffToken(idp.region, 'anna', `${root}/fhir`);
    const fhir = fhirClient(root, token);
    // Anna proposes two times (the demo's own dates age; these never do).
    for (const [id, days] of [['browser-ja', 20], ['browser-annan', 27]]) {
      const put = await fhir('PUT', `Appointment/${id}`, proposedTime(id, days));
      if (put.status >= 300) throw new Error(`Anna could not propose a time: ${JSON.stringify(put.body)}`);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    await patientFlows(browser, root, fhir);
    await accessibility(browser, root);
    await newcomer(browser);
  } finally {
    await browser?.close();
    paraply?.kill('SIGTERM');
    idp.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  if (failures > 0) {
    console.log(`${failures} browser check(s) failed`);
    process.exit(1);
  }
  console.log('all browser checks passed');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
