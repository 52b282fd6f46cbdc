// Shows one document at a page with a cited passage highlighted: PDFs rendered by pdf.js
// (canvas + text layer), other formats as the chunks the index holds. The passage is located
// by its words on the page, not by trusting the page number: the cited page first, then its
// neighbours; when it is on none of them, the viewer says so.

import { h, clear } from './dom.js';
import { api, ApiError } from './api.js';
import { words, longestRun, runIsMatch, passageSpan, appendMarked } from './text.js';

const PDFJS = '/assets/vendor/pdfjs/pdf.min.mjs';
const WORKER = '/assets/vendor/pdfjs/pdf.worker.min.mjs';
let pdfjsPromise = null;
const pdfCache = new Map(); // document id → Promise<PDFDocumentProxy>
const chunkCache = new Map(); // document id → Promise<chunks>

function loadPdfjs() {
  if (!pdfjsPromise) {
    pdfjsPromise = import(PDFJS).then((lib) => {
      lib.GlobalWorkerOptions.workerSrc = WORKER;
      return lib;
    });
  }
  return pdfjsPromise;
}

async function openPdf(documentId, breakGlass) {
  if (!pdfCache.has(documentId)) {
    const promise = (async () => {
      const lib = await loadPdfjs();
      const response = await api(`/v1/documents/${encodeURIComponent(documentId)}/file`, { raw: true, breakGlass });
      const data = new Uint8Array(await response.arrayBuffer());
      return lib.getDocument({
        data,
        isEvalSupported: false,
        useWasm: false,
        enableXfa: false,
        disableFontFace: false,
        stopAtErrors: false,
      }).promise;
    })();
    pdfCache.set(documentId, promise);
    promise.catch(() => pdfCache.delete(documentId));
    // Keep the last few documents open (citations often point into the same ones).
    while (pdfCache.size > 4) {
      const [oldest, old] = pdfCache.entries().next().value;
      pdfCache.delete(oldest);
      old.then((pdf) => pdf.destroy()).catch(() => {});
    }
  }
  return pdfCache.get(documentId);
}

function getChunks(documentId, breakGlass) {
  if (!chunkCache.has(documentId)) {
    const promise = api(`/v1/documents/${encodeURIComponent(documentId)}/chunks`, { breakGlass });
    chunkCache.set(documentId, promise);
    promise.catch(() => chunkCache.delete(documentId));
  }
  return chunkCache.get(documentId);
}

/** The page's words, each with the text-content items it spans. */
function pageWords(textContent) {
  let text = '';
  const owner = []; // char index → item index
  let itemIndex = -1;
  for (const item of textContent.items) {
    if (item.str === undefined) continue;
    itemIndex += 1;
    for (let i = 0; i < item.str.length; i += 1) owner.push(itemIndex);
    text += item.str;
    if (item.hasEOL) { text += ' '; owner.push(itemIndex); }
  }
  const list = [];
  const items = [];
  const re = /[\p{L}\p{N}]+/gu;
  let m;
  const lower = text.toLowerCase();
  while ((m = re.exec(lower)) !== null) {
    list.push(m[0].normalize('NFKC'));
    items.push([owner[m.index], owner[m.index + m[0].length - 1]]);
  }
  return { words: list, items };
}

function locate(textContent, quoteWords) {
  const pw = pageWords(textContent);
  if (!quoteWords.length || !pw.words.length) return null;
  const run = longestRun(pw.words, quoteWords);
  if (!runIsMatch(run.length, quoteWords.length)) return { found: false, run, pw };
  const [first, last] = passageSpan(pw.words, quoteWords, run);
  return { found: true, run, pw, first, last };
}

/** Pages to look at: the cited one, then its neighbours, nearest first. */
function candidatePages(page, count) {
  const out = [];
  for (const p of [page, page - 1, page + 1, page - 2, page + 2]) {
    if (p >= 1 && p <= count && !out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * Renders the viewer into `container`. opts: {documentId, page, chunkId, quote, breakGlass,
 * headingLevel (2 or 3), compact}. Returns a cleanup function.
 */
export async function showDocument(container, opts) {
  clear(container);
  const state = { cancelled: false, renderTask: null, textLayer: null };
  const headingTag = opts.headingLevel === 3 ? 'h3' : 'h2';
  const status = h('p', { class: 'viewer-status', role: 'status', 'aria-live': 'polite' }, 'Opening the document…');
  container.appendChild(status);
  let doc;
  try {
    doc = await api(`/v1/documents/${encodeURIComponent(opts.documentId)}`, { breakGlass: opts.breakGlass });
  } catch (err) {
    status.textContent = '';
    const text = err.status === 404 ? 'This document does not exist, or you may not read it.' : err.message;
    container.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, text));
    if (err instanceof ApiError) throw err;
    return () => {};
  }
  if (state.cancelled) return () => {};
  const heading = h(headingTag, { class: 'viewer-title', tabindex: '-1' }, doc.title || doc.file_name);
  const meta = h('p', { class: 'meta' }, `${doc.collection} · ${doc.file_name} · ${doc.format} · ${doc.num_pages} page${doc.num_pages === 1 ? '' : 's'}`);
  container.insertBefore(heading, status);
  container.insertBefore(meta, status);
  const quoteWords = words(opts.quote || '');
  const cleanup = () => {
    state.cancelled = true;
    if (state.renderTask) state.renderTask.cancel();
    if (state.textLayer) state.textLayer.cancel();
  };
  if (doc.format === 'pdf') {
    await showPdf(container, doc, opts, quoteWords, status, state);
  } else {
    await showChunks(container, doc, opts, quoteWords, status, state);
  }
  return cleanup;
}

async function showPdf(container, doc, opts, quoteWords, status, state) {
  let pdf;
  try {
    pdf = await openPdf(doc.id, opts.breakGlass);
  } catch (err) {
    status.textContent = '';
    container.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, `The PDF could not be shown: ${err.message}`));
    return;
  }
  if (state.cancelled) return;
  const count = pdf.numPages;
  const cited = Math.min(Math.max(1, opts.page || 1), count);
  const pageLabel = h('span', { class: 'page-number', 'data-testid': 'page-number' });
  const prev = h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Previous page' }, '‹ Previous');
  const next = h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Next page' }, 'Next ›');
  const zoomOut = h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Zoom out' }, '−');
  const zoomIn = h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Zoom in' }, '+');
  const zoomLabel = h('span', { class: 'zoom-label', 'aria-live': 'polite' }, 'Fit width');
  const toolbar = h('div', { class: 'viewer-toolbar' }, prev, pageLabel, next,
    h('span', { class: 'zoom' }, zoomOut, zoomLabel, zoomIn));
  let zoom = 1; // times the fit-to-width scale
  const found = h('p', { class: 'passage-note', 'data-testid': 'passage-note' });
  const pageBox = h('div', { class: 'pdf-page' });
  const scroller = h('div', { class: 'pdf-scroller', tabindex: '0', 'aria-label': 'Document page' }, pageBox);
  container.append(toolbar, found, scroller);

  const textCache = new Map();
  const textOf = async (n) => {
    if (!textCache.has(n)) textCache.set(n, pdf.getPage(n).then((p) => p.getTextContent()));
    return textCache.get(n);
  };

  // Find the passage: the cited page first, then neighbours.
  let target = cited;
  let match = null;
  if (quoteWords.length) {
    status.textContent = `Looking for the passage on page ${cited}…`;
    for (const n of candidatePages(cited, count)) {
      const result = locate(await textOf(n), quoteWords);
      if (state.cancelled) return;
      if (result && result.found) { target = n; match = result; break; }
    }
  }
  let current = target;
  const note = () => {
    found.className = 'passage-note';
    if (!quoteWords.length) { found.textContent = ''; found.hidden = true; return; }
    found.hidden = false;
    if (!match) {
      found.classList.add('not-found');
      found.textContent = `The cited passage could not be found on page ${cited} or the pages next to it. Showing page ${cited} as cited; read it with care.`;
    } else if (target !== cited) {
      found.classList.add('moved');
      found.textContent = `The passage was cited as page ${cited} but was found on page ${target}; it is highlighted there.`;
    } else {
      found.classList.add('found');
      found.textContent = `The cited passage is highlighted on page ${target}.`;
    }
  };
  note();

  const draw = async (n) => {
    current = n;
    pageLabel.textContent = `Page ${n} of ${count}`;
    pageBox.dataset.page = String(n);
    prev.disabled = n <= 1;
    next.disabled = n >= count;
    status.textContent = `Rendering page ${n}…`;
    if (state.renderTask) state.renderTask.cancel();
    if (state.textLayer) state.textLayer.cancel();
    const page = await pdf.getPage(n);
    if (state.cancelled || current !== n) return;
    const lib = await loadPdfjs();
    const base = page.getViewport({ scale: 1 });
    const width = Math.max(280, scroller.clientWidth - 24 || 800);
    const fit = Math.min(1.6, Math.max(0.4, width / base.width));
    const scale = fit * zoom;
    zoomLabel.textContent = zoom === 1 ? 'Fit width' : `${Math.round(zoom * 100)}% of width`;
    const viewport = page.getViewport({ scale });
    const ratio = window.devicePixelRatio || 1;
    const canvas = h('canvas', { class: 'pdf-canvas', 'aria-hidden': 'true' });
    canvas.width = Math.floor(viewport.width * ratio);
    canvas.height = Math.floor(viewport.height * ratio);
    canvas.style.width = `${Math.floor(viewport.width)}px`;
    canvas.style.height = `${Math.floor(viewport.height)}px`;
    const textDiv = h('div', { class: 'textLayer' });
    clear(pageBox);
    pageBox.style.setProperty('--scale-factor', String(scale));
    pageBox.style.width = `${Math.floor(viewport.width)}px`;
    pageBox.style.height = `${Math.floor(viewport.height)}px`;
    pageBox.append(canvas, textDiv);
    state.renderTask = page.render({
      canvas,
      viewport,
      transform: ratio !== 1 ? [ratio, 0, 0, ratio, 0, 0] : null,
    });
    const textContent = await textOf(n);
    state.textLayer = new lib.TextLayer({ textContentSource: textContent, container: textDiv, viewport });
    try {
      await Promise.all([state.renderTask.promise, state.textLayer.render()]);
    } catch (err) {
      if (err && err.name === 'RenderingCancelledException') return;
      if (err && err.name === 'AbortException') return;
      status.textContent = `Page ${n} could not be drawn completely: ${err.message}`;
    }
    if (state.cancelled || current !== n) return;
    status.textContent = `Page ${n} of ${count}.`;
    status.classList.add('visually-hidden');
    if (match && n === target) highlight(state.textLayer.textDivs, match, pageBox, scroller);
  };
  zoomIn.addEventListener('click', () => { zoom = Math.min(4, zoom * 1.25); draw(current); });
  zoomOut.addEventListener('click', () => { zoom = Math.max(0.5, zoom / 1.25); draw(current); });
  prev.addEventListener('click', () => { if (current > 1) draw(current - 1); });
  next.addEventListener('click', () => { if (current < count) draw(current + 1); });
  scroller.addEventListener('keydown', (event) => {
    if (event.key === 'PageDown' && current < count) { event.preventDefault(); draw(current + 1); }
    if (event.key === 'PageUp' && current > 1) { event.preventDefault(); draw(current - 1); }
  });
  await draw(target);
}

function highlight(textDivs, match, pageBox, scroller) {
  const { pw, first, last } = match;
  const firstItem = pw.items[first][0];
  const lastItem = pw.items[last][1];
  const marked = [];
  for (let k = firstItem; k <= lastItem; k += 1) {
    const div = textDivs[k];
    if (!div) continue;
    div.classList.add('passage-hl');
    if (div.textContent.trim()) marked.push(div);
  }
  pageBox.dataset.highlighted = marked.map((d) => d.textContent).join(' ').replace(/\s+/g, ' ').trim();
  if (marked.length) {
    scrollIntoBox(scroller, marked[0]);
  }
}

async function showChunks(container, doc, opts, quoteWords, status, state) {
  let chunks;
  try {
    chunks = await getChunks(doc.id, opts.breakGlass);
  } catch (err) {
    status.textContent = '';
    container.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
    return;
  }
  if (state.cancelled) return;
  chunks = chunks.slice().sort((a, b) => (a.page - b.page) || (a.ordinal - b.ordinal));
  // The chunk to show: by id, else by its words (best run over the cited page and neighbours).
  let target = opts.chunkId ? chunks.find((c) => c.chunk_id === opts.chunkId) : null;
  let how = target ? 'id' : null;
  if (quoteWords.length) {
    let best = null;
    const pages = new Set(candidatePages(opts.page || 1, Math.max(...chunks.map((c) => c.page), 1)));
    for (const c of chunks) {
      if (target && c !== target) continue;
      if (!target && !pages.has(c.page)) continue;
      const run = longestRun(words(c.text), quoteWords);
      if (!best || run.length > best.run.length) best = { chunk: c, run };
    }
    if (best && runIsMatch(best.run.length, quoteWords.length)) { target = best.chunk; how = 'text'; } else if (!target) how = null;
  }
  const found = h('p', { class: 'passage-note', 'data-testid': 'passage-note' });
  const pageLabel = h('p', { class: 'page-number', 'data-testid': 'page-number' });
  const list = h('div', { class: 'chunks', tabindex: '0', 'aria-label': 'Document text' });
  container.append(pageLabel, found, list);
  const citedPage = opts.page || (target ? target.page : 1);
  if (quoteWords.length || opts.chunkId) {
    if (target) {
      found.className = `passage-note ${target.page === citedPage ? 'found' : 'moved'}`;
      found.textContent = target.page === citedPage
        ? `The cited passage is highlighted on page ${target.page}.`
        : `The passage was cited as page ${citedPage} but was found on page ${target.page}; it is highlighted there.`;
    } else {
      found.className = 'passage-note not-found';
      found.textContent = `The cited passage could not be found on page ${citedPage} or the pages next to it.`;
    }
  } else found.hidden = true;
  const shownPage = target ? target.page : citedPage;
  pageLabel.textContent = `Page ${shownPage} of ${doc.num_pages}`;
  let lastPage = null;
  let targetEl = null;
  for (const c of chunks) {
    if (c.page !== lastPage) {
      list.appendChild(h('h3', { class: 'chunk-page', id: `page-${c.page}` }, `Page ${c.page}`));
      lastPage = c.page;
    }
    const p = h('p', { class: 'chunk', dataset: { chunk: c.chunk_id, page: String(c.page) } });
    appendMarked(p, c.text, null); // text only: a document's markup shows as text
    if (c === target) {
      p.classList.add('passage-hl');
      p.setAttribute('aria-label', 'Cited passage');
      targetEl = p;
    }
    list.appendChild(p);
  }
  if (!chunks.length) list.appendChild(h('p', { class: 'empty' }, 'This document has no text.'));
  status.textContent = how ? 'Scrolled to the cited passage.' : `${chunks.length} passages.`;
  status.classList.add('visually-hidden');
  if (state.cancelled) return;
  const scrollTo = targetEl || list.querySelector(`#page-${shownPage}`);
  if (scrollTo) scrollIntoBox(list, scrollTo);
}

/** Scrolls `box` (a scrolling element) so that `el` is near its top, without moving the page. */
function scrollIntoBox(box, el) {
  const delta = el.getBoundingClientRect().top - box.getBoundingClientRect().top;
  box.scrollTop = Math.max(0, box.scrollTop + delta - 48);
}
