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

export async function render(main, ctx) {
  const id = ctx.params.id;
  const out = h('section', { class: 'card', 'aria-live': 'polite', id: 'summary' });
  const button = h('button', { type: 'button', class: 'primary', id: 'summarize-button' }, 'Summarize');
  const docLine = h('p', { class: 'meta' });
  main.append(h('h1', null, 'Summarize a document'), docLine, h('div', { class: 'actions' }, button), out);
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
    clear(out).appendChild(h('p', { class: 'loading', role: 'status' }, 'Summarizing every page… this reads the whole document and can take a minute.'));
    const started = performance.now();
    try {
      const summary = await api('/v1/summarize', { method: 'POST', body: { document_id: id }, breakGlass });
      clear(out);
      out.append(
        h('h2', { tabindex: '-1', id: 'summary-title' }, `Summary of ${summary.document.title || summary.document.file_name}`),
        citedSummary(summary.text, id),
        h('p', { class: 'meta' }, `Read ${summary.num_chunks} passages in ${((performance.now() - started) / 1000).toFixed(1)} s. Page citations open the page.`));
      if (summary.partials && summary.partials.length > 1) {
        const details = h('details', { open: true }, h('summary', null, `Summaries of ${summary.partials.length} parts, page by page`));
        for (const part of summary.partials) {
          const label = part.first_page === part.last_page ? `Page ${part.first_page}` : `Pages ${part.first_page}–${part.last_page}`;
          details.append(
            h('h3', null, h('a', { href: `#/document/${encodeURIComponent(id)}?page=${part.first_page}`, class: 'part-link' }, label)),
            citedSummary(part.text, id));
        }
        out.appendChild(details);
      }
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
