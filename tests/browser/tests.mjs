// Browser tests of Vellum's web app against the real binary (tests/browser/run.sh starts it and
// sets BASE_URL and the passwords). Debian's Chromium, driven by playwright-core; axe-core runs
// inside the pages. Prints one line per test, the measured figures, and exits 1 on any failure.

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const BASE = process.env.BASE_URL;
if (!BASE) throw new Error('BASE_URL is not set: run tests/browser/run.sh');
const CORPUS = path.join(process.env.VELLUM_SHARED_DIR, 'corpora/legal-cuad-contracts/pdf');
const PDF_NAME = 'ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF';
const SHOTS = process.env.SCREENSHOTS === 'none' ? null : process.env.SCREENSHOTS;
const USERS = {
  admin: process.env.ADMIN_PASSWORD,
  alice: process.env.ALICE_PASSWORD,
  bob: process.env.BOB_PASSWORD,
  carol: process.env.CAROL_PASSWORD,
  dana: process.env.DANA_PASSWORD,
};
const ACME = 'acme-matter';     // alice only
const SHARED = 'shared-matter'; // alice, bob, carol
const LAPTOP = { width: 1366, height: 768 };
const TABLET = { width: 768, height: 1024 };

const metrics = {};
const results = [];
const pageErrors = [];
const axeReport = [];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vellum-browser-'));
const state = {}; // what one test leaves for the next (document ids, conversation)
let expectCspViolations = false; // while the CSP test injects scripts on purpose

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

async function test(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok    ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (err) {
    results.push({ name, ok: false, error: err });
    console.log(`FAIL  ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)\n      ${String(err.stack || err).split('\n').slice(0, 6).join('\n      ')}`);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
// Playwright gives each context a fresh profile (a new user-data-dir per launch).

async function newPage(viewport = LAPTOP) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(`${page.url()}: ${err.message}`));
  page.on('console', (msg) => {
    // A refused request (401 before sign-in, 403/404 in the denial tests) is logged by the
    // browser as a failed resource load: expected. Anything else red is a bug.
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())
        && !(expectCspViolations && /Content Security Policy/.test(msg.text()))) {
      pageErrors.push(`${page.url()}: console: ${msg.text()}`);
    }
  });
  page.setDefaultTimeout(30_000);
  return { context, page };
}

async function signIn(user, viewport, base = BASE) {
  const { context, page } = await newPage(viewport);
  await page.goto(`${base}/#/signin`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(USERS[user]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('h1', { hasText: /Documents|Your account/ }).waitFor();
  return { context, page };
}

async function go(page, hash, heading) {
  const origin = page.url().startsWith('https://') ? new URL(page.url()).origin : BASE;
  await page.goto(`${origin}/${hash}`);
  if (heading) await page.locator('h1', { hasText: heading }).waitFor();
}

/** axe-core on the page as it is: no serious or critical violation. */
async function axe(page, label) {
  await page.evaluate(axeSource); // DevTools evaluation: not an inline script, so the CSP allows it
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
    resultTypes: ['violations'],
  }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  axeReport.push({
    page: label,
    violations: result.violations.length,
    serious_or_critical: bad.length,
    others: result.violations.filter((v) => !bad.includes(v)).map((v) => `${v.id} (${v.impact})`),
  });
  assert(bad.length === 0, `axe on ${label}: ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`).join('; ')}`);
}

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

/** Fetch inside the page (same origin, with the cookie), with the CSRF token unless told not to. */
async function pageFetch(page, url, init = {}, { csrf = true } = {}) {
  return page.evaluate(async ({ url, init, csrf }) => {
    const headers = { ...(init.headers || {}) };
    if (csrf) {
      const s = await (await fetch('/web/session')).json();
      headers['X-CSRF-Token'] = s.csrf;
    }
    const response = await fetch(url, { ...init, headers });
    let body = null;
    const text = await response.text();
    try { body = JSON.parse(text); } catch { body = text; }
    return { status: response.status, body, headers: Object.fromEntries(response.headers.entries()) };
  }, { url, init, csrf });
}

const words = (text) => (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []);

// ---------------------------------------------------------------------------------------------

let alice;

await test('security headers: strict CSP, framing, referrer, HSTS on / and the assets', async () => {
  const { context, page } = await newPage();
  for (const url of [`${BASE}/`, `${BASE}/assets/js/app.js`, `${BASE}/assets/css/app.css`]) {
    const response = await page.request.get(url);
    assert(response.status() === 200, `${url}: ${response.status()}`);
    const h = response.headers();
    const csp = h['content-security-policy'] || '';
    assert(/script-src 'self'(;|$)/.test(csp), `${url}: script-src is not 'self' only: ${csp}`);
    assert(!/unsafe-inline|unsafe-eval/.test(csp), `${url}: CSP allows unsafe-*: ${csp}`);
    assert(/default-src 'none'/.test(csp) && /frame-ancestors 'none'/.test(csp), `${url}: CSP ${csp}`);
    assert(/style-src 'self'(;|$)/.test(csp), `${url}: style-src ${csp}`);
    assert(h['x-frame-options'] === 'DENY', `${url}: X-Frame-Options ${h['x-frame-options']}`);
    assert(h['referrer-policy'] === 'no-referrer', `${url}: Referrer-Policy ${h['referrer-policy']}`);
    assert(/max-age=\d+/.test(h['strict-transport-security'] || ''), `${url}: HSTS ${h['strict-transport-security']}`);
    assert(h['x-content-type-options'] === 'nosniff', `${url}: nosniff`);
  }
  await context.close();
});

await test('sign in page: form, accessible, screenshot; wrong password refused', async () => {
  const { context, page } = await newPage();
  await go(page, '#/signin', 'Sign in');
  await page.getByLabel('User name').fill('alice');
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: /wrong user name or password/i }).waitFor();
  await page.getByLabel('Password').fill('');
  await axe(page, 'sign in');
  await shot(page, 'signin');
  await context.close();
});

await test('sign in; the session cookie is Secure, HttpOnly, SameSite=Strict, __Host-', async () => {
  alice = await signIn('alice');
  const cookies = await alice.context.cookies();
  const session = cookies.find((c) => c.name === '__Host-vellum_session');
  assert(session, `no session cookie: ${cookies.map((c) => c.name)}`);
  assert(session.secure === true, 'cookie not Secure');
  assert(session.httpOnly === true, 'cookie not HttpOnly');
  assert(session.sameSite === 'Strict', `cookie SameSite=${session.sameSite}`);
  assert(session.path === '/' && !session.domain.startsWith('.'), `cookie path ${session.path} domain ${session.domain}`);
  const visible = await alice.page.evaluate(() => document.cookie);
  assert(!visible.includes('vellum_session'), 'the cookie is readable from JavaScript');
  // The notice that access is logged is on the page.
  assert(await alice.page.getByText('Access to documents is logged').isVisible(), 'no access notice');
});

await test('upload several files with progress: a CUAD PDF and a text become ready, a broken PDF is quarantined with its reason', async () => {
  const { page } = alice;
  const broken = path.join(work, 'truncated-contract.pdf');
  fs.writeFileSync(broken, fs.readFileSync(path.join(CORPUS, PDF_NAME)).subarray(0, 1500));
  await go(page, '#/documents', 'Documents');
  await page.getByLabel('Collection', { exact: true }).fill(ACME);
  await page.locator('input[type=file]').setInputFiles([path.join(CORPUS, PDF_NAME), broken]);
  await page.getByRole('button', { name: 'Upload' }).click();
  const items = page.locator('#upload-list li');
  await items.first().waitFor();
  assert(await items.count() === 2, 'two uploads listed');
  assert(await page.locator('#upload-list progress').count() === 2, 'a progress bar per file');
  const pdfItem = page.locator('#upload-list li', { hasText: 'JOINT VENTURE' });
  await pdfItem.locator('.status[data-state=ready]').waitFor({ timeout: 300_000 });
  const brokenItem = page.locator('#upload-list li', { hasText: 'truncated-contract' });
  await brokenItem.locator('.status[data-state=quarantined]').waitFor({ timeout: 120_000 });
  const reason = await brokenItem.locator('.status').textContent();
  assert(/quarantined: .{5,}/.test(reason), `quarantine reason shown: ${reason}`);
  state.pdfId = await pdfItem.getAttribute('data-document-id');
  assert(state.pdfId, 'document id of the PDF');

  // The hostile text document (its text is markup) goes into the shared matter.
  const hostile = path.join(work, 'hostile-note.txt');
  fs.writeFileSync(hostile, 'Memo about the shared matter.\n\nThe opposing party sent this text: '
    + '<script>window.__vellumXss = 1</script> and <img src=x onerror="window.__vellumXss = 2"> '
    + 'which must be shown as text, never run.\n');
  const other = path.join(CORPUS, '../txt', fs.readdirSync(path.join(CORPUS, '../txt')).sort()[1]);
  await page.getByLabel('Collection', { exact: true }).fill(SHARED);
  await page.locator('input[type=file]').setInputFiles([hostile, other]);
  await page.getByRole('button', { name: 'Upload' }).click();
  const hostileItem = page.locator('#upload-list li', { hasText: 'hostile-note.txt' });
  await hostileItem.locator('.status[data-state=ready]').waitFor({ timeout: 300_000 });
  await page.locator('#upload-list li', { hasText: path.basename(other) }).locator('.status[data-state=ready]').waitFor({ timeout: 300_000 });
  state.hostileId = await hostileItem.getAttribute('data-document-id');
  // Listed under their collections, with status and actions.
  await page.locator(`section[data-collection="${ACME}"] table`).waitFor();
  const acmeText = await page.locator(`section[data-collection="${ACME}"]`).innerText();
  assert(/JOINT VENTURE/i.test(acmeText) && /ready/.test(acmeText) && /pdf/.test(acmeText), `acme list: ${acmeText}`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await axe(page, 'documents');
  await shot(page, 'documents');
});

await test('search: snippet with highlighted terms, title, page, collection; filters and paging', async () => {
  const { page } = alice;
  await go(page, '#/search', 'Search');
  await page.getByLabel('Search for').fill('division of income and losses between the joint venturers');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#search-results h2').waitFor();
  const hits = page.locator('.hit');
  assert(await hits.count() > 0, 'no results');
  const first = hits.first();
  const marks = await first.locator('.snippet mark').allTextContents();
  assert(marks.length > 0, 'no <mark> in the first snippet');
  assert(marks.some((m) => /income|loss|division|joint|ventur/i.test(m)), `marks: ${marks}`);
  const meta = await first.locator('.meta').textContent();
  assert(/Page \d+/.test(meta), `page in meta: ${meta}`);
  assert(meta.includes(ACME) || meta.includes(SHARED), `collection in meta: ${meta}`);
  assert((await first.locator('.hit-title a').textContent()).length > 3, 'title');
  // Filter to the shared matter: no hit from acme.
  await page.locator('details.filters > summary').click();
  await page.getByLabel('Collection', { exact: true }).selectOption(SHARED);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#search-results h2').waitFor();
  await page.waitForFunction(() => !document.querySelector('#search-results .loading'));
  const metas = await page.locator('.hit .meta').allTextContents();
  assert(metas.every((m) => !m.includes(ACME)), `collection filter leaked: ${metas}`);
  // Paging: the acme PDF has more than one page of chunks with bm25 and k=10.
  await page.getByLabel('Collection', { exact: true }).selectOption(ACME);
  await page.getByLabel('Mode').selectOption('bm25');
  await page.getByLabel('Search for').fill('joint venture');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#search-results h2').waitFor();
  await page.waitForFunction(() => !document.querySelector('#search-results .loading'));
  const next = page.getByRole('button', { name: 'Next' });
  if (await next.isEnabled()) {
    await next.click();
    await page.locator('#search-results h2', { hasText: 'Results 11' }).waitFor();
    metrics.search_paging = 'next page shown';
  } else {
    metrics.search_paging = 'one page of results only';
  }
  // Date filter: nothing was added before 2000.
  await page.getByLabel('Added on or before').fill('2000-01-01');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#search-results h2', { hasText: 'No results' }).waitFor();
  await page.getByLabel('Added on or before').fill('');
  // Document type: the acme matter holds a PDF and no text file.
  await page.getByLabel('Document type').selectOption('text');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#search-results h2', { hasText: 'No results' }).waitFor();
  await page.getByLabel('Document type').selectOption('pdf');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('.hit').first().waitFor();
  await page.getByLabel('Document type').selectOption('');
  await page.getByLabel('Mode').selectOption('hybrid');
  await page.getByLabel('Search for').fill('division of income and losses between the joint venturers');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('.hit').first().waitFor();
  await page.evaluate(() => window.scrollTo(0, 0));
  await axe(page, 'search');
  await shot(page, 'search');
});

await test('document view: the passage is found by its text on its page, a moved page is said, a missing passage is said', async () => {
  const { page } = alice;
  await go(page, '#/documents', 'Documents');
  const chunks = await pageFetch(page, `/v1/documents/${state.pdfId}/chunks`, {}, { csrf: false });
  assert(chunks.status === 200 && chunks.body.length > 0, `chunks: ${chunks.status}`);
  const pages = Math.max(...chunks.body.map((c) => c.page));
  const chunk = chunks.body.find((c) => c.page >= 2 && words(c.text).length > 30) || chunks.body[0];
  state.pdfPages = pages;
  // Cited at its page.
  const quote = chunk.text.slice(0, 400);
  await go(page, `#/document/${state.pdfId}?page=${chunk.page}&chunk=${chunk.chunk_id}&quote=${encodeURIComponent(quote)}`, 'Document');
  await page.locator('.pdf-page[data-highlighted]').waitFor({ timeout: 60_000 });
  const label = await page.getByTestId('page-number').textContent();
  assert(label.startsWith(`Page ${chunk.page} of `), `page label ${label} for page ${chunk.page}`);
  assert(await page.locator('.passage-note.found').isVisible(), 'found note');
  const highlighted = await page.locator('.pdf-page').getAttribute('data-highlighted');
  const hw = words(highlighted);
  const qw = new Set(words(quote));
  const overlap = hw.filter((w) => qw.has(w)).length / Math.max(1, hw.length);
  assert(hw.length >= 8 && overlap >= 0.6, `highlight ${JSON.stringify(highlighted.slice(0, 200))} overlaps the quote ${overlap}`);
  await axe(page, 'document (PDF)');
  await shot(page, 'document');
  // Cited at a neighbouring page: found where it is, and the note says so.
  if (pages >= 2) {
    const wrong = chunk.page === 1 ? 2 : chunk.page - 1;
    await go(page, `#/document/${state.pdfId}?page=${wrong}&quote=${encodeURIComponent(quote)}`, 'Document');
    await page.locator('.passage-note.moved').waitFor({ timeout: 60_000 });
    const moved = await page.getByTestId('page-number').textContent();
    assert(moved.startsWith(`Page ${chunk.page} of `), `moved to ${moved}, expected page ${chunk.page}`);
  }
  // A passage that is nowhere: said visibly.
  await go(page, '#/documents', 'Documents');
  await go(page, `#/document/${state.pdfId}?page=1&quote=${encodeURIComponent('zebra quantum xylophone marmalade nebula accordion')}`, 'Document');
  await page.locator('.passage-note.not-found').waitFor({ timeout: 60_000 });
  assert(/could not be found/.test(await page.locator('.passage-note').textContent()), 'not-found note');
});

await test('ask: the answer streams in, sources listed, a citation opens the PDF at its page with the passage highlighted', async () => {
  const { page } = alice;
  await go(page, '#/ask', 'Ask');
  await page.locator('.collection-picker input').first().waitFor();
  for (const box of await page.locator('.collection-picker input').all()) {
    const value = await box.getAttribute('value');
    if (value === ACME) await box.check(); else await box.uncheck();
  }
  await page.getByLabel('Question', { exact: true }).fill('How are income and losses divided between the joint venturers?');
  const clicked = Date.now();
  await page.getByRole('button', { name: 'Ask', exact: true }).click();
  await page.waitForFunction(() => window.vellumMetrics && window.vellumMetrics.askToFirstTokenMs !== undefined, null, { timeout: 180_000 });
  const seenByTest = Date.now() - clicked;
  await page.locator('.answer .answer-text').waitFor({ timeout: 300_000 });
  const inPage = await page.evaluate(() => window.vellumMetrics);
  metrics.ask_click_to_first_token_ms = Math.round(inPage.askToFirstTokenMs);
  metrics.ask_click_to_first_token_seen_by_test_ms = seenByTest;
  metrics.ask_click_to_complete_answer_ms = Math.round(inPage.askToAnswerMs);
  state.conversation = decodeURIComponent(page.url().split('#/ask/')[1] || '');
  assert(state.conversation, `the conversation's id is in the URL: ${page.url()}`);
  // Every source given to the model is listed, cited or not.
  const sources = page.locator('.sources .source');
  const sourceCount = await sources.count();
  assert(sourceCount > 0, 'no sources listed');
  const conv = await pageFetch(page, `/v1/conversations/${encodeURIComponent(state.conversation)}`, {}, { csrf: false });
  assert(conv.status === 200, `conversation: ${conv.status}`);
  const turn = conv.body.turns[conv.body.turns.length - 1];
  assert(turn.sources.length === sourceCount, `${sourceCount} listed, ${turn.sources.length} given`);
  const cited = new Set(turn.answer.cited);
  assert(await page.locator('.badge-cited').count() === turn.sources.filter((s) => cited.has(s.n)).length, 'cited badges');
  assert(await page.locator('.badge-not-cited').count() === turn.sources.filter((s) => !cited.has(s.n)).length, 'not-cited badges');
  assert(await page.locator('.answer .badge-uncited').count() >= Math.min(1, turn.answer.uncited_sentences.length), 'uncited sentences marked');
  // The citation to click: one in the answer text (preferring a page after the first), else
  // the sources list when the model cited nothing.
  let button;
  const citeButtons = page.locator('.answer-text button.cite');
  let n;
  if (await citeButtons.count() > 0) {
    const all = await citeButtons.evaluateAll((els) => els.map((e) => Number(e.dataset.n)));
    n = all.find((k) => (turn.sources.find((s) => s.n === k) || {}).page > 1) ?? all[0];
    button = page.locator(`.answer-text button.cite[data-n="${n}"]`).first();
    metrics.citation_clicked = `[${n}] in the answer text`;
  } else {
    n = (turn.sources.find((s) => s.page > 1) || turn.sources[0]).n;
    button = page.locator(`.sources button[data-n="${n}"]`);
    metrics.citation_clicked = `[${n}] in the sources list (the model cited nothing)`;
  }
  const source = turn.sources.find((s) => s.n === n);
  await button.click();
  const panel = page.locator('#source-panel');
  await panel.locator('.pdf-page[data-highlighted]').waitFor({ timeout: 60_000 });
  const label = await panel.getByTestId('page-number').textContent();
  assert(label.startsWith(`Page ${source.page} of `), `panel shows ${label}; source [${n}] is page ${source.page}`);
  assert(await panel.locator('.passage-note.found').isVisible(), `found note: ${await panel.locator('.passage-note').textContent()}`);
  const highlighted = await panel.locator('.pdf-page').getAttribute('data-highlighted');
  const hw = words(highlighted);
  const sw = new Set(words(source.text));
  const overlap = hw.filter((w) => sw.has(w)).length / Math.max(1, hw.length);
  assert(hw.length >= 5 && overlap >= 0.6, `highlight ${JSON.stringify(highlighted.slice(0, 200))} vs source: overlap ${overlap}`);
  assert(await panel.locator('.textLayer .passage-hl').count() > 0, 'highlighted spans in the text layer');
  metrics.citation_page = source.page;
  metrics.citation_highlight_words = hw.length;
  // Export buttons point at the export endpoint and answer with files.
  for (const [format, type] of [['docx', /officedocument|docx/], ['pdf', /pdf/]]) {
    const href = await page.getByRole('link', { name: format === 'docx' ? 'Word (DOCX)' : 'PDF', exact: true }).getAttribute('href');
    assert(href.endsWith(`/export?format=${format}`), `export link ${href}`);
    const response = await page.request.get(`${BASE}${href}`);
    assert(response.status() === 200, `export ${format}: ${response.status()}`);
    assert(type.test(response.headers()['content-type'] || ''), `export ${format} type ${response.headers()['content-type']}`);
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  await axe(page, 'ask');
  await shot(page, 'ask');
  // The same question straight to the API from the page (no UI): the server's share of the
  // time to the first token, to compare with the click-to-first-token figure above.
  metrics.api_ask_to_first_token_ms = await page.evaluate(async (question) => {
    const s = await (await fetch('/web/session')).json();
    const started = performance.now();
    const response = await fetch('/v1/ask', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf },
      body: JSON.stringify({ question, collections: ['acme-matter'] }),
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    let first = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      if (first === null && /(^|\n)event: token/.test(text)) first = performance.now() - started;
    }
    return first === null ? null : Math.round(first);
  }, 'How are income and losses divided between the joint venturers?');
  // A follow-up question in the same conversation, then it is listed and reloads with both turns.
  await page.getByLabel('Follow-up question').fill('And who pays the expenses?');
  await page.getByRole('button', { name: 'Ask', exact: true }).click();
  await page.locator('.turn').nth(1).locator('.answer-text').waitFor({ timeout: 300_000 });
  await go(page, `#/ask/${encodeURIComponent(state.conversation)}`, 'Ask');
  await page.locator('.turn').nth(1).locator('.answer-text').waitFor();
  assert(await page.locator('#conversation-list a').count() >= 1, 'conversation listed');
});

await test('ask with an engine that cites: the answer leads with a quoted sentence; [n] opens the PDF at its page, the passage highlighted; invalid citations reported, unsupported sentences left out', async () => {
  const base = process.env.SCRIPTED_BASE_URL;
  assert(base, 'SCRIPTED_BASE_URL is not set');
  const session = await signIn('alice', LAPTOP, base);
  const { page } = session;
  await go(page, '#/documents', 'Documents');
  await page.getByLabel('Collection', { exact: true }).fill('cardiology');
  await page.locator('input[type=file]').setInputFiles([path.join(CORPUS, PDF_NAME)]);
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('#upload-list .status[data-state=ready]').waitFor({ timeout: 300_000 });
  state.cardiologyId = await page.locator('#upload-list li').first().getAttribute('data-document-id');
  await go(page, '#/ask', 'Ask');
  await page.locator('.collection-picker input').first().waitFor();
  await page.getByLabel('Question', { exact: true }).fill('How are income and losses divided between the joint venturers?');
  await page.getByRole('button', { name: 'Ask', exact: true }).click();
  await page.locator('.answer .answer-text').waitFor({ timeout: 120_000 });
  const id = decodeURIComponent(page.url().split('#/ask/')[1] || '');
  const conv = await pageFetch(page, `/v1/conversations/${encodeURIComponent(id)}`, {}, { csrf: false });
  const turn = conv.body.turns[0];
  assert(turn.answer.cited.length >= 1, `cited: ${JSON.stringify(turn.answer.cited)}`);
  // The answer leads with a sentence of a source, quoted; the engine's supported sentence follows.
  assert(turn.answer.quotes.length >= 1 && turn.answer.text.startsWith('\u201c'), `quotes: ${turn.answer.text}`);
  assert(turn.answer.text.includes('The agreement says'), `the supported sentence is kept: ${turn.answer.text}`);
  const n = turn.answer.cited[0];
  const source = turn.sources.find((s) => s.n === n);
  // The invalid citation is reported; the sentences that cite nothing (one only had the invalid
  // marker) are left out of the answer and listed apart.
  assert(turn.answer.invalid_citations.length >= 1, `invalid: ${JSON.stringify(turn.answer.invalid_citations)}`);
  await page.locator('.invalid-citations', { hasText: turn.answer.invalid_citations[0] }).waitFor();
  assert(turn.answer.unsupported_sentences.length === 2, `unsupported: ${turn.answer.unsupported_sentences}`);
  const shown = await page.locator('.answer .answer-text').first().textContent();
  assert(!shown.includes('This sentence cites nothing'), `an unsupported sentence is in the answer: ${shown}`);
  await page.locator('.answer details.unsupported').waitFor();
  assert(turn.answer.uncited_sentences.length === 0, `uncited: ${turn.answer.uncited_sentences}`);
  const button = page.locator(`.answer-text button.cite[data-n="${n}"]`);
  assert(await button.getAttribute('aria-label') === `Source ${n}: ${source.title}, page ${source.page}`, 'citation label');
  await button.click();
  const panel = page.locator('#source-panel');
  await panel.locator('.pdf-page[data-highlighted]').waitFor({ timeout: 60_000 });
  const label = await panel.getByTestId('page-number').textContent();
  assert(label.startsWith(`Page ${source.page} of `), `panel shows ${label}; source [${n}] is page ${source.page}`);
  assert(await panel.locator('.passage-note.found').isVisible(), `note: ${await panel.locator('.passage-note').textContent()}`);
  const hw = words(await panel.locator('.pdf-page').getAttribute('data-highlighted'));
  const sw = new Set(words(source.text));
  const overlap = hw.filter((w) => sw.has(w)).length / Math.max(1, hw.length);
  assert(hw.length >= 5 && overlap >= 0.6, `highlight overlaps the source: ${overlap}`);
  metrics.scripted_citation = `[${n}] → page ${source.page}, ${hw.length} words highlighted`;
  await page.evaluate(() => window.scrollTo(0, 0));
  await axe(page, 'ask (citations)');
  await shot(page, 'ask-citations');
  // Deleting the conversation (after a confirmation) removes it from the list and the server.
  await page.getByRole('button', { name: /^Delete conversation / }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.locator('#conversation-list .empty').waitFor();
  const gone = await pageFetch(page, `/v1/conversations/${encodeURIComponent(id)}`, {}, { csrf: false });
  assert(gone.status === 404, `deleted conversation: ${gone.status}`);
  await session.context.close();
});

await test('break-glass (hospital policies): a clinician of another department gets the document only with a reason, which is audited', async () => {
  const base = process.env.SCRIPTED_BASE_URL;
  assert(state.cardiologyId, 'the cardiology document from the previous test');
  const dana = await signIn('dana', LAPTOP, base);
  const { page } = dana;
  const session = await pageFetch(page, '/web/session', {}, { csrf: false });
  assert(session.body.break_glass === true, `session offers break-glass: ${JSON.stringify(session.body.break_glass)}`);
  // Without emergency access: nothing, but the offer.
  // (Section 6 is on the PDF's first page: its printed page number 39 sits mid-page.)
  await go(page, `#/document/${state.cardiologyId}?page=1&quote=${encodeURIComponent('Division of Income and Losses. All income and credits')}`, 'Document');
  await page.locator('#document-viewer .msg-error').waitFor();
  assert(!(await page.locator('body').innerText()).includes('JOINT VENTURE'), 'the title leaked before break-glass');
  await page.getByRole('button', { name: 'Request emergency access…' }).click();
  const dialogBox = page.getByRole('dialog', { name: 'Emergency access (break-glass)' });
  await dialogBox.waitFor();
  await axe(page, 'break-glass dialog');
  await shot(page, 'break-glass');
  // An empty reason is not accepted; a real one is.
  await dialogBox.getByRole('button', { name: 'Open with emergency access' }).click();
  assert(await dialogBox.isVisible(), 'the dialog closed without a reason');
  await dialogBox.getByLabel('Reason for emergency access').fill('Patient in the emergency room, cardiology record needed — Dr. Dana');
  await dialogBox.getByRole('button', { name: 'Open with emergency access' }).click();
  await page.locator('#document-viewer .pdf-page[data-highlighted]').waitFor({ timeout: 60_000 });
  assert((await page.getByTestId('page-number').textContent()).startsWith('Page 1 of'), 'the cited page');
  assert(await page.locator('.passage-note.found').isVisible(), 'the passage found');
  // Search with emergency access finds it; without, not.
  await go(page, `#/search?q=${encodeURIComponent('division of income and losses')}`, 'Search');
  await page.locator('#search-results h2').waitFor();
  assert(!(await page.locator('#search-results').innerText()).includes('JOINT VENTURE'), 'found without break-glass');
  await page.locator('details.filters > summary').click();
  await page.getByLabel(/Emergency access \(break-glass\)/).check();
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const searchDialog = page.getByRole('dialog', { name: 'Emergency access (break-glass)' });
  await searchDialog.getByLabel('Reason for emergency access').fill('Same emergency: looking for the cardiology record');
  await searchDialog.getByRole('button', { name: 'Open with emergency access' }).click();
  await page.locator('.hit', { hasText: 'JOINT VENTURE' }).first().waitFor();
  await dana.context.close();
  // The administrator sees the reason in the audit log.
  const { context, page: adminPage } = await newPage();
  await adminPage.goto(`${base}/#/signin`);
  await adminPage.getByLabel('User name').fill('admin');
  await adminPage.getByLabel('Password').fill(USERS.admin);
  await adminPage.getByRole('button', { name: 'Sign in' }).click();
  await adminPage.locator('h1', { hasText: /Documents|Your account/ }).waitFor();
  await go(adminPage, '#/admin/audit?user=dana', 'Audit log');
  await adminPage.locator('#audit-records-title').waitFor();
  await adminPage.locator('td', { hasText: 'Patient in the emergency room' }).first().waitFor();
  await context.close();
});

await test('summarize: quoted facts with page links that open the page', async () => {
  const { page } = alice;
  await go(page, `#/summarize/${state.pdfId}`, 'Summarize');
  await page.locator('.meta a').waitFor();
  await page.getByRole('button', { name: 'Summarize', exact: true }).click();
  await page.locator('#summary-title').waitFor({ timeout: 600_000 });
  const found = await page.locator('#summary table.summary-items tbody tr').count();
  const missing = await page.locator('#summary .not-found li').count();
  assert(found + missing > 0, 'the summary lists no item');
  metrics.summary_items_found = found;
  metrics.summary_items_not_found = missing;
  await axe(page, 'summarize');
  await shot(page, 'summarize');
  const cites = page.locator('#summary a.page-cite');
  metrics.summary_page_citations = await cites.count();
  assert(found === 0 || await cites.count() >= found, 'a found item has no page link');
  if (await cites.count() > 0) {
    const href = await cites.first().getAttribute('href');
    const wanted = Number(new URLSearchParams(href.split('?')[1]).get('page'));
    await cites.first().click();
    await page.getByTestId('page-number').waitFor({ timeout: 60_000 });
    await page.waitForFunction(() => /^Page \d+ of/.test(document.querySelector('[data-testid=page-number]')?.textContent || ''));
    const label = await page.getByTestId('page-number').textContent();
    assert(label.startsWith(`Page ${wanted} of`), `page citation opened ${label}, wanted ${wanted}`);
  }
});

await test('CSP: a document whose text is markup shows as text and runs nothing; an injected inline script is blocked', async () => {
  const { page } = alice;
  await go(page, `#/document/${state.hostileId}`, 'Document');
  await page.locator('.chunks .chunk').first().waitFor();
  const shown = await page.locator('.chunks').innerText();
  assert(shown.includes('<script>window.__vellumXss = 1</script>'), `markup not shown as text: ${shown.slice(0, 300)}`);
  assert(shown.includes('<img src=x onerror='), 'img markup not shown as text');
  assert(await page.locator('.chunks script, .chunks img').count() === 0, 'markup became elements');
  assert(await page.evaluate(() => window.__vellumXss) === undefined, 'the document\'s script ran');
  await axe(page, 'document (text)');
  // Search snippet of the same text: also text.
  await go(page, `#/search?q=${encodeURIComponent('opposing party script')}&collection=${SHARED}`, 'Search');
  await page.locator('.hit').first().waitFor();
  assert(await page.locator('.hit script, .hit img').count() === 0, 'markup in a snippet became elements');
  // An inline script injected into the page (as an XSS would) is refused by the CSP.
  expectCspViolations = true;
  const violation = await page.evaluate(() => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve({ directive: e.violatedDirective, policy: e.originalPolicy }), { once: true });
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true';
    document.body.appendChild(s);
    const img = document.createElement('img');
    img.setAttribute('src', 'data:,x');
    img.setAttribute('onerror', 'window.__inlineRan = true');
    setTimeout(() => resolve(null), 3000);
  }));
  assert(violation && /script-src/.test(violation.directive), `no CSP violation reported: ${JSON.stringify(violation)}`);
  assert(await page.evaluate(() => window.__inlineRan) === undefined, 'the injected inline script ran');
  expectCspViolations = false;
  metrics.csp_violation_reported = violation.directive;
});

await test('CSRF: without the token, or from another origin, a state change with the cookie is refused (403)', async () => {
  const { page } = alice;
  await go(page, '#/documents', 'Documents');
  const body = JSON.stringify({ query: 'joint venture' });
  const json = { 'Content-Type': 'application/json' };
  const withToken = await pageFetch(page, '/v1/search', { method: 'POST', body, headers: json });
  assert(withToken.status === 200, `with the token: ${withToken.status}`);
  const noToken = await pageFetch(page, '/v1/search', { method: 'POST', body, headers: json }, { csrf: false });
  assert(noToken.status === 403 && noToken.body.code === 'csrf', `without the token: ${noToken.status} ${JSON.stringify(noToken.body)}`);
  // A foreign Origin with a valid token and the cookie (what a forged request could carry).
  const session = await pageFetch(page, '/web/session', {}, { csrf: false });
  const del = await page.request.delete(`${BASE}/v1/documents/${state.pdfId}`, {
    headers: { Origin: 'https://evil.example', 'X-CSRF-Token': session.body.csrf },
  });
  assert(del.status() === 403, `foreign Origin delete: ${del.status()}`);
  assert((await del.json()).code === 'csrf', 'code csrf');
  const still = await pageFetch(page, `/v1/documents/${state.pdfId}`, {}, { csrf: false });
  assert(still.status === 200, 'the document survived');
  // A real page on another origin posting with the browser's cookies: refused, nothing made.
  const admin = await signIn('admin');
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(`<!doctype html><title>evil</title><form id=f method=post action="${BASE}/v1/users" enctype="text/plain">
      <input name='{"name":"mallory","password":"mallory password 123","roles":["admin"],"x":"' value='"}'></form>
      <script>
        fetch(${JSON.stringify(`${BASE}/v1/users`)}, { method: 'POST', mode: 'no-cors', credentials: 'include',
          headers: { 'Content-Type': 'text/plain' },
          body: JSON.stringify({ name: 'mallory2', password: 'mallory password 123', roles: ['admin'] }) })
          .finally(() => document.getElementById('f').submit());
      </script>`);
  });
  await new Promise((resolve) => evil.listen(0, '127.0.0.1', resolve));
  const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
  const responses = [];
  admin.page.on('response', (r) => {
    if (r.url().startsWith(`${BASE}/v1/users`) && r.request().method() === 'POST') responses.push(r.status());
  });
  await admin.page.goto(evilUrl);
  await admin.page.waitForTimeout(2500);
  evil.close();
  await go(admin.page, '#/admin/users', 'Users');
  const users = await pageFetch(admin.page, '/v1/users', {}, { csrf: false });
  const names = users.body.map((u) => u.name);
  assert(!names.includes('mallory') && !names.includes('mallory2'), `a forged request made an account: ${names}`);
  metrics.csrf_cross_site_statuses = responses;
  await admin.context.close();
});

await test('a user without rights sees nothing of a forbidden collection on any page', async () => {
  const bob = await signIn('bob');
  const { page } = bob;
  const secrets = [ACME, 'MightyCell', 'JOINT VENTURE AGREEMENT', 'ACCELERATED', 'Collectible Concepts'];
  const clean = async (where) => {
    const text = await page.locator('body').innerText();
    for (const s of secrets) assert(!text.toLowerCase().includes(s.toLowerCase()), `${where} shows "${s}"`);
  };
  await go(page, '#/documents', 'Documents');
  await page.locator(`section[data-collection="${SHARED}"]`).waitFor();
  assert(await page.locator(`#collection-names option[value="${ACME}"]`).count() === 0, 'acme offered as a collection');
  await clean('documents');
  await go(page, `#/search?q=${encodeURIComponent('MightyCell batteries joint venture income losses')}`, 'Search');
  await page.locator('#search-results h2').waitFor();
  await clean('search');
  assert(await page.locator(`select option[value="${ACME}"]`).count() === 0, 'acme in the search filter');
  await go(page, `#/search?q=${encodeURIComponent('MightyCell')}&collection=${ACME}`, 'Search');
  await page.locator('#search-results h2').waitFor();
  await clean('search restricted to acme');
  await go(page, '#/ask', 'Ask');
  await page.locator('.collection-picker input').first().waitFor();
  await clean('ask');
  assert(await page.locator(`.collection-picker input[value="${ACME}"]`).count() === 0, 'acme in the ask picker');
  await go(page, `#/ask/${encodeURIComponent(state.conversation)}`, 'Ask');
  await page.locator('.conversation .msg-error').waitFor();
  await clean('alice\'s conversation');
  await go(page, `#/document/${state.pdfId}?page=2&quote=income`, 'Document');
  await page.locator('#document-viewer .msg-error').waitFor();
  await clean('the forbidden document');
  assert(await page.getByRole('button', { name: /emergency access/i }).count() === 0, 'break-glass offered under the law-firm policies');
  await go(page, `#/summarize/${state.pdfId}`, 'Summarize');
  await page.locator('.meta .msg-error').waitFor();
  await clean('summary of the forbidden document');
  for (const url of [`/v1/documents/${state.pdfId}`, `/v1/documents/${state.pdfId}/file`, `/v1/documents/${state.pdfId}/chunks`,
    `/v1/conversations/${encodeURIComponent(state.conversation)}`, `/v1/documents?collection=${ACME}`]) {
    const r = await pageFetch(page, url, {}, { csrf: false });
    assert([403, 404].includes(r.status) || (r.status === 200 && Array.isArray(r.body) && r.body.length === 0), `${url}: ${r.status}`);
  }
  const asked = await pageFetch(page, '/v1/search', { method: 'POST', body: JSON.stringify({ query: 'MightyCell', collections: [ACME] }), headers: { 'Content-Type': 'application/json' } });
  assert(asked.status === 403 || (asked.status === 200 && asked.body.results.length === 0), `search in acme: ${asked.status}`);
  await bob.context.close();
});

await test('account: change password (signs out), then sign in with the new one', async () => {
  const carol = await signIn('carol');
  const { page } = carol;
  await go(page, '#/account', 'account');
  await axe(page, 'account');
  await shot(page, 'account');
  const fresh = 'carol new password 2026';
  await page.getByLabel('Current password').fill(USERS.carol);
  await page.getByLabel('New password', { exact: true }).fill(fresh);
  await page.getByLabel('New password again').fill(fresh);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.locator('h1', { hasText: 'Sign in' }).waitFor();
  USERS.carol = fresh;
  await carol.context.close();
  const again = await signIn('carol');
  await again.context.close();
});

await test('admin: users (add, disable), API keys (shown once, revoke), audit log with filters and verify, quarantine, status', async () => {
  const admin = await signIn('admin');
  const { page } = admin;
  // Users.
  await go(page, '#/admin/users', 'Users');
  await page.locator('table').waitFor();
  await page.getByLabel('User name').fill('dave');
  await page.getByLabel('Initial password').fill('dave initial password 1');
  await page.getByLabel('Roles').fill('paralegal');
  await page.getByLabel('Groups').fill(SHARED);
  await page.getByRole('button', { name: 'Add user' }).click();
  await page.locator('.msg-ok', { hasText: 'Added dave' }).waitFor();
  await page.getByRole('button', { name: 'Disable dave' }).click();
  await page.getByRole('button', { name: 'Enable dave' }).waitFor();
  await axe(page, 'admin users');
  await shot(page, 'admin-users');
  // Keys.
  await go(page, '#/admin/keys', 'API keys');
  await page.getByLabel('What it is for').fill('browser-test');
  await page.getByRole('button', { name: 'Create key' }).click();
  const key = await page.locator('#new-key-value').inputValue();
  assert(/^vk_/.test(key), `key shown once: ${key.slice(0, 6)}…`);
  await page.locator('table', { hasText: 'browser-test' }).waitFor();
  await axe(page, 'admin keys');
  await shot(page, 'admin-keys');
  const keyId = key.split('_').slice(0, 2).join('_');
  const revoke = page.getByRole('button', { name: /^Revoke key / }).first();
  await revoke.click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await page.locator('td', { hasText: 'revoked' }).first().waitFor();
  metrics.key_revoked = keyId;
  // Audit log.
  await go(page, '#/admin/audit', 'Audit log');
  await page.locator('#audit-verify .msg').waitFor();
  const verify = await page.locator('#audit-verify').innerText();
  assert(/Verified/.test(verify), `verify: ${verify}`);
  await page.locator('table').waitFor();
  await page.getByLabel('User', { exact: true }).fill('bob');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator('#audit-records-title').waitFor();
  await page.waitForFunction(() => !document.querySelector('.admin-body .loading'));
  const principals = await page.locator('tbody tr td:nth-child(3)').allTextContents();
  assert(principals.length > 0 && principals.every((p) => p.includes('bob')), `user filter: ${principals.slice(0, 5)}`);
  await page.getByLabel('User', { exact: true }).fill('');
  await page.getByLabel('Document id').fill(state.pdfId);
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForFunction(() => !document.querySelector('.admin-body .loading'));
  assert(await page.locator('tbody tr').count() > 0, 'records for the PDF');
  await page.getByLabel('Document id').fill('');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForFunction(() => !document.querySelector('.admin-body .loading'));
  await axe(page, 'admin audit');
  await shot(page, 'admin-audit');
  // Quarantine: the truncated PDF with its reason.
  await go(page, '#/admin/quarantine', 'Quarantine');
  await page.locator('table', { hasText: 'truncated-contract.pdf' }).waitFor();
  await axe(page, 'admin quarantine');
  await shot(page, 'admin-quarantine');
  // Status figures.
  await go(page, '#/admin/status', 'Status');
  await page.locator('.figures').waitFor();
  const figures = await page.locator('.figures').innerText();
  assert(/Documents\s+\d+/.test(figures), `figures: ${figures}`);
  await axe(page, 'admin status');
  await shot(page, 'admin-status');
  await admin.context.close();
});

await test('tablet width (768 px): pages fit without sideways scrolling', async () => {
  const tablet = await signIn('alice', TABLET);
  const { page } = tablet;
  for (const [hash, heading] of [['#/documents', 'Documents'], [`#/search?q=${encodeURIComponent('joint venture income')}`, 'Search'],
    [`#/ask/${encodeURIComponent(state.conversation)}`, 'Ask'], [`#/document/${state.pdfId}?page=1`, 'Document']]) {
    await go(page, hash, heading);
    await page.waitForTimeout(800);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(overflow <= 1, `${hash} is ${overflow} px too wide at 768 px`);
  }
  await go(page, `#/ask/${encodeURIComponent(state.conversation)}`, 'Ask');
  await page.locator('.answer-text').first().waitFor();
  await axe(page, 'ask (tablet)');
  await shot(page, 'ask-tablet');
  await tablet.context.close();
});

await test('keyboard: skip link, focus moves to the heading on route change, visible focus', async () => {
  const { page } = alice;
  await go(page, '#/search', 'Search');
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.tagName);
  assert(focused === 'H1', `focus after route change on ${focused}`);
  await page.goto(`${BASE}/#/documents`);
  await page.locator('h1', { hasText: 'Documents' }).waitFor();
  await page.keyboard.press('Tab');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert(outline !== 'none', `focused element has no visible outline (${outline})`);
});

await test('page weight: bytes of the app\'s JS and CSS, and of pdf.js (loaded for PDFs only)', async () => {
  const { context, page } = await signIn('alice');
  const sizes = new Map();
  page.on('response', async (r) => {
    const url = r.url();
    if (!url.startsWith(`${BASE}/assets/`)) return;
    try { sizes.set(url, (await r.body()).length); } catch { /* redirected or aborted */ }
  });
  await page.reload();
  await page.locator('h1', { hasText: 'Documents' }).waitFor();
  await page.waitForTimeout(500);
  const shell = [...sizes.entries()];
  await go(page, `#/document/${state.pdfId}?page=1`, 'Document');
  await page.locator('.pdf-page canvas').waitFor({ timeout: 60_000 });
  await page.waitForTimeout(1000);
  const sum = (entries, re) => entries.filter(([u]) => re.test(u)).reduce((a, [, n]) => a + n, 0);
  const all = [...sizes.entries()];
  metrics.page_weight_app_js_bytes = sum(shell, /\/assets\/js\/.*\.js$/);
  metrics.page_weight_app_css_bytes = sum(shell, /\.css$/);
  metrics.page_weight_html_bytes = (await (await page.request.get(`${BASE}/`)).body()).length;
  metrics.page_weight_pdfjs_bytes = sum(all, /\/vendor\/pdfjs\/pdf\.min\.mjs$/);
  metrics.page_weight_pdfjs_worker_bytes = sum(all, /\/vendor\/pdfjs\/pdf\.worker\.min\.mjs$/);
  const files = fs.readdirSync(new URL('../../services/server/web/js/pages', import.meta.url)).length;
  metrics.app_js_modules = shell.filter(([u]) => /\/assets\/js\//.test(u)).length;
  assert(metrics.page_weight_app_js_bytes > 0 && files > 0, 'measured');
  await context.close();
});

await test('documents: delete asks first, then the document is gone from the list and the API', async () => {
  const { page } = alice;
  await go(page, '#/documents', 'Documents');
  const section = page.locator(`section[data-collection="${SHARED}"]`);
  await section.locator('table').waitFor();
  const rows = section.locator('tbody tr');
  const before = await rows.count();
  const row = rows.filter({ hasNotText: 'hostile-note' }).first();
  const title = await row.locator('td').first().innerText();
  const id = decodeURIComponent((await row.locator('td a').first().getAttribute('href')).split('#/document/')[1]);
  await row.getByRole('button', { name: /^Delete / }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
  assert(await rows.count() === before, 'cancel kept it');
  await row.getByRole('button', { name: /^Delete / }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.waitForFunction(([coll, n]) => document.querySelectorAll(`section[data-collection="${coll}"] tbody tr`).length === n - 1, [SHARED, before]);
  assert(!(await section.innerText()).includes(title), `${title} still listed`);
  const r = await pageFetch(page, `/v1/documents/${id}`, {}, { csrf: false });
  assert(r.status === 404, `deleted document: ${r.status}`);
});

await test('sign out ends the session', async () => {
  const { page } = alice;
  await go(page, '#/documents', 'Documents');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('h1', { hasText: 'Sign in' }).waitFor();
  const s = await page.evaluate(async () => (await fetch('/web/session')).status);
  assert(s === 401, `session after sign-out: ${s}`);
  const cookies = await alice.context.cookies();
  assert(!cookies.some((c) => c.name === '__Host-vellum_session' && c.value), 'cookie still set');
});

await test('no script errors on any page', async () => {
  assert(pageErrors.length === 0, pageErrors.join('\n'));
});

await browser.close();
fs.rmSync(work, { recursive: true, force: true });

console.log('\naxe-core (serious or critical / all violations per page):');
for (const a of axeReport) console.log(`  ${a.page}: ${a.serious_or_critical} / ${a.violations}${a.others.length ? ` (${a.others.join(', ')})` : ''}`);
console.log('\nmeasured:');
for (const [k, v] of Object.entries(metrics)) console.log(`  ${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
if (process.env.METRICS_OUT) fs.writeFileSync(process.env.METRICS_OUT, JSON.stringify({ metrics, axe: axeReport }, null, 2));
const failed = results.filter((r) => !r.ok);
console.log(`\nbrowser tests: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
