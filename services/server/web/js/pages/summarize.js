import { h, clear } from '../dom.js';
import { api, breakGlassMaybe, askBreakGlassReason } from '../api.js';

export function title() { return 'Summary'; }

/** Splits a summary into text and page-citation links: [p. 3], [pp. 2-4], (p. 3), (pp. 2–4). */
export function citedSummary(text, documentId) {
  const p = h('p', { class: 'summary-text' });
  const re = /[[(]pp?\.\s*(\d+)(?:\s*[-–]\s*(\d+))?[\])]/g;
  let last = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) p.appendChild(document.createTextNode(text.slice(last, m.index)));
    const first = Number(m[1]);
    const label = m[2] ? `pages ${m[1]} to ${m[2]}` : `page ${m[1]}`;
    p.appendChild(h('a', {
      class: 'cite page-cite',
      href: `#/document/${encodeURIComponent(documentId)}?page=${first}`,
      'aria-label': `Open ${label}`,
    }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) p.appendChild(document.createTextNode(text.slice(last)));
  return p;
}

const KINDS = [
  ['', 'Detect from the document'],
  ['contract', 'Contract brief'],
  ['clinical', 'Patient-record summary'],
  ['email', 'E-mail thread'],
  ['filing', 'Court filing'],
  ['general', 'Key points'],
];

/** One found item: its section, plain reading, the verbatim quote and a link to its page. */
function itemRow(item, documentId) {
  return h('tr', null,
    h('th', { scope: 'row' }, item.section),
    h('td', null,
      h('p', { class: 'item-text' }, item.text),
      h('blockquote', { class: 'item-quote' }, `“${item.quote}”`)),
    h('td', null, h('a', {
      class: 'cite page-cite',
      href: `#/document/${encodeURIComponent(documentId)}?page=${item.page}`,
    }, `Page ${item.page}`)));
}

/** The summary: prose the facts support, the found items as a table, then what was not found. */
export function renderSummary(out, summary, id, seconds) {
  const found = summary.items.filter((item) => item.status === 'found');
  const missing = summary.items.filter((item) => item.status === 'not_found');
  out.append(h('h2', { tabindex: '-1', id: 'summary-title' },
    `${KINDS.find(([k]) => k === summary.kind)?.[1] || 'Summary'}: ${summary.document.title || summary.document.file_name}`));
  if (summary.prose && summary.prose.text) out.appendChild(citedSummary(summary.prose.text, id));
  if (found.length) {
    const table = h('table', { class: 'summary-items' },
      h('caption', null, `${found.length} found, each quoted from the document with its page`),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Section'), h('th', { scope: 'col' }, 'What the document says'), h('th', { scope: 'col' }, 'Page'))));
    const body = h('tbody');
    for (const item of found) body.appendChild(itemRow(item, id));
    table.appendChild(body);
    out.appendChild(table);
  }
  if (missing.length) {
    out.appendChild(h('div', { class: 'not-found' },
      h('h3', null, `Searched for and not found (${missing.length})`),
      h('ul', null, ...missing.map((item) => h('li', null, h('strong', null, item.section), ` — ${item.text}`)))));
  }
  if (summary.prose && summary.prose.dropped_sentences.length) {
    const n = summary.prose.dropped_sentences.length;
    const details = h('details', { class: 'hint' }, h('summary', null, `${n} sentence${n === 1 ? '' : 's'} of the model's prose left out: not supported by the quoted facts.`));
    for (const s of summary.prose.dropped_sentences) details.appendChild(h('p', { class: 'dropped' }, s));
    out.appendChild(details);
  }
  out.appendChild(h('p', { class: 'meta' }, `${summary.kind_detected ? 'Kind detected from the document. ' : ''}Searched ${summary.num_chunks} passages in ${seconds.toFixed(1)} s. Page links open the page.`));
}

export async function render(main, ctx) {
  const id = ctx.params.id;
  const out = h('section', { class: 'card', 'aria-live': 'polite', id: 'summary' });
  const button = h('button', { type: 'button', class: 'primary', id: 'summarize-button' }, 'Summarize');
  const kind = h('select', { id: 'summary-kind' }, ...KINDS.map(([value, label]) => h('option', { value }, label)));
  const prose = h('input', { type: 'checkbox', id: 'summary-prose' });
  const docLine = h('p', { class: 'meta' });
  main.append(h('h1', null, 'Summarize a document'), docLine,
    h('div', { class: 'actions' },
      h('label', { for: 'summary-kind' }, 'Kind '), kind,
      h('label', { for: 'summary-prose' }, prose, ' Add the model’s prose (slower; kept only where the facts support it)'),
      button), out);
  let doc = null;
  try {
    doc = await api(`/v1/documents/${encodeURIComponent(id)}`);
    docLine.append(h('a', { href: `#/document/${encodeURIComponent(id)}` }, doc.title || doc.file_name),
      ` · ${doc.collection} · ${doc.num_pages} page${doc.num_pages === 1 ? '' : 's'}`);
  } catch (err) {
    docLine.appendChild(h('span', { class: 'msg msg-error', role: 'alert' }, err.message));
    if (!breakGlassMaybe(err)) button.disabled = true;
  }
  const run = async (breakGlass) => {
    button.disabled = true;
    clear(out).appendChild(h('p', { class: 'loading', role: 'status' }, 'Finding the facts in every page, then writing… this can take a minute.'));
    const started = performance.now();
    try {
      const body = { document_id: id, prose: prose.checked };
      if (kind.value) body.kind = kind.value;
      const summary = await api('/v1/summarize', { method: 'POST', body, breakGlass });
      clear(out);
      renderSummary(out, summary, id, (performance.now() - started) / 1000);
      out.querySelector('#summary-title').focus();
      ctx.announce('Summary ready.');
    } catch (err) {
      clear(out).appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
      if (!breakGlass && breakGlassMaybe(err)) {
        const reason = await askBreakGlassReason(err);
        if (reason) { run(reason); return; }
      }
    }
    button.disabled = false;
  };
  button.addEventListener('click', () => run(null));
}
