import { h, clear, field, uid } from '../dom.js';
import { api, session, askBreakGlassReason } from '../api.js';
import { snippet } from '../text.js';

export function title() { return 'Search'; }

const PAGE = 10;

export async function render(main, ctx) {
  const q = ctx.query;
  const query = h('input', { type: 'search', name: 'q', required: true, value: q.get('q') || '', autocomplete: 'off', maxlength: 4096 });
  const collection = h('select', { name: 'collection' }, h('option', { value: '' }, 'All collections'));
  const mode = h('select', { name: 'mode' },
    h('option', { value: 'hybrid' }, 'Hybrid (words and meaning)'),
    h('option', { value: 'bm25' }, 'Exact words (BM25)'),
    h('option', { value: 'vector' }, 'Meaning (vectors)'));
  mode.value = q.get('mode') || 'hybrid';
  const format = h('select', { name: 'format' },
    h('option', { value: '' }, 'Any type'),
    h('option', { value: 'pdf' }, 'PDF'),
    h('option', { value: 'docx' }, 'Word'),
    h('option', { value: 'email' }, 'E-mail'),
    h('option', { value: 'html' }, 'Web page'),
    h('option', { value: 'ccda' }, 'Patient record (C-CDA)'),
    h('option', { value: 'text' }, 'Text'),
    h('option', { value: 'markdown' }, 'Markdown'));
  format.value = q.get('format') || '';
  const from = h('input', { type: 'date', name: 'from', value: q.get('from') || '' });
  const to = h('input', { type: 'date', name: 'to', value: q.get('to') || '' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Search');
  // Emergency access, only where the deployment's policies offer it.
  const breakGlass = session.breakGlass ? h('input', { type: 'checkbox', id: 'search-break-glass' }) : null;
  let breakGlassReason = null;
  const form = h('form', { class: 'card search-form', role: 'search', 'aria-label': 'Search documents' },
    h('div', { class: 'row' }, h('div', { class: 'grow' }, field('Search for', query)), h('div', { class: 'actions end' }, submit)),
    h('details', { class: 'filters', open: q.get('collection') || q.get('format') || q.get('from') || q.get('to') || (q.get('mode') && q.get('mode') !== 'hybrid') ? true : null },
      h('summary', null, 'Filters'),
      h('div', { class: 'row' },
        field('Collection', collection),
        field('Mode', mode),
        field('Document type', format),
        field('Added on or after', from),
        field('Added on or before', to)),
      breakGlass ? h('div', { class: 'check' }, breakGlass,
        h('label', { for: 'search-break-glass' }, 'Emergency access (break-glass): search beyond my departments; asks for a reason and is audited')) : null));
  const resultsTitleId = uid('results');
  const results = h('section', { 'aria-labelledby': resultsTitleId, class: 'results', id: 'search-results' });
  main.append(h('h1', null, 'Search'), form, results);

  try {
    const list = await api('/v1/collections');
    for (const c of list) collection.appendChild(h('option', { value: c.name }, c.name));
    collection.value = q.get('collection') || '';
  } catch { /* the search itself reports a failure */ }

  async function run(offset, focusResults) {
    const params = new URLSearchParams();
    params.set('q', query.value);
    if (collection.value) params.set('collection', collection.value);
    if (mode.value !== 'hybrid') params.set('mode', mode.value);
    if (format.value) params.set('format', format.value);
    if (from.value) params.set('from', from.value);
    if (to.value) params.set('to', to.value);
    if (offset) params.set('offset', String(offset));
    history.replaceState(null, '', `#/search?${params}`);

    const body = { query: query.value, mode: mode.value, k: PAGE };
    if (collection.value) body.collections = [collection.value];
    if (offset) body.offset = offset;
    if (format.value) body.formats = [format.value];
    if (from.value) body.ingested_after = from.value;
    if (to.value) body.ingested_before = to.value;
    clear(results).appendChild(h('p', { class: 'loading', role: 'status' }, 'Searching…'));
    submit.disabled = true;
    let response;
    try {
      response = await api('/v1/search', { method: 'POST', body, breakGlass: breakGlass && breakGlass.checked ? breakGlassReason : null });
    } catch (err) {
      clear(results).appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
      submit.disabled = false;
      return;
    }
    submit.disabled = false;
    const hits = response.results || [];
    const start = (response.offset ?? offset) || 0;
    const heading = h('h2', { id: resultsTitleId, tabindex: '-1' },
      hits.length ? `Results ${start + 1}–${start + hits.length}` : 'No results');
    clear(results).appendChild(heading);
    if (!hits.length) {
      results.appendChild(h('p', { class: 'empty' }, start ? 'No more results.' : 'Nothing you may read matches. Try other words or fewer filters.'));
    }
    const list = h('ol', { class: 'hits', start: start + 1 });
    for (const hit of hits) {
      const link = `#/document/${encodeURIComponent(hit.document_id)}?${new URLSearchParams({ page: String(hit.page), chunk: hit.chunk_id, quote: hit.text.slice(0, 600) })}`;
      list.appendChild(h('li', { class: 'hit' },
        h('h3', { class: 'hit-title' }, h('a', { href: link }, hit.title)),
        h('p', { class: 'meta' },
          h('span', null, `Page ${hit.page}`), ' · ',
          h('span', null, hit.collection),
          hit.format ? [' · ', h('span', null, hit.format)] : null,
          ' · ', h('span', null, `score ${Number(hit.score).toFixed(3)}`)),
        snippet(hit.text, query.value)));
    }
    results.appendChild(list);
    const hasMore = response.has_more ?? hits.length === PAGE;
    const nav = h('nav', { class: 'pager', 'aria-label': 'Result pages' },
      h('button', { type: 'button', class: 'secondary', disabled: start === 0, onclick: () => run(Math.max(0, start - PAGE), true) }, 'Previous'),
      h('button', { type: 'button', class: 'secondary', disabled: !hasMore, onclick: () => run(start + PAGE, true) }, 'Next'));
    results.appendChild(nav);
    ctx.announce(hits.length ? `${hits.length} results.` : 'No results.');
    if (focusResults) heading.focus();
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!query.value.trim()) { query.focus(); return; }
    if (breakGlass && breakGlass.checked && !breakGlassReason) {
      askBreakGlassReason(null).then((reason) => {
        if (!reason) { breakGlass.checked = false; return; }
        breakGlassReason = reason;
        run(0, true);
      });
      return;
    }
    run(0, true);
  });
  if (query.value.trim()) run(Number(q.get('offset') || 0), false);
}
