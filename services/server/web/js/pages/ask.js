import { h, clear, uid, formatTime, confirmDialog } from '../dom.js';
import { api, streamEvents } from '../api.js';
import { showDocument } from '../viewer.js';

export function title(ctx) { return ctx.params.conversation ? 'Conversation' : 'Ask'; }

/** Time from the last Ask click to its first streamed token, for the browser tests. */
window.vellumMetrics = window.vellumMetrics || {};

/**
 * The answer with each [n] as a button that opens source n, uncited sentences marked, and
 * markers that name no source marked invalid.
 */
export function renderAnswer(answer, sources, openSource) {
  const text = answer.text || '';
  const byN = new Map(sources.map((s) => [s.n, s]));
  // Ranges of the uncited sentences in the text.
  const ranges = [];
  for (const sentence of answer.uncited_sentences || []) {
    const s = sentence.trim();
    if (!s) continue;
    let from = 0;
    for (;;) {
      const at = text.indexOf(s, from);
      if (at < 0) break;
      if (!ranges.some(([a, b]) => at < b && at + s.length > a)) { ranges.push([at, at + s.length]); break; }
      from = at + 1;
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const body = h('div', { class: 'answer-text' });
  const segments = [];
  let pos = 0;
  for (const [a, b] of ranges) {
    if (a > pos) segments.push({ text: text.slice(pos, a), uncited: false });
    segments.push({ text: text.slice(a, b), uncited: true });
    pos = b;
  }
  if (pos < text.length) segments.push({ text: text.slice(pos), uncited: false });
  for (const seg of segments) {
    const target = seg.uncited ? h('span', { class: 'uncited' }) : body;
    appendWithCitations(target, seg.text, byN, openSource);
    if (seg.uncited) {
      body.appendChild(target);
      body.appendChild(h('span', { class: 'badge badge-uncited', title: 'This sentence cites no source' }, 'no source'));
    }
  }
  return body;
}

function appendWithCitations(el, text, byN, openSource) {
  const re = /\[(\d+(?:\s*,\s*\d+)*)\]/g;
  let last = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (m.index > last) el.appendChild(document.createTextNode(text.slice(last, m.index)));
    for (const part of m[1].split(',')) {
      const n = Number(part.trim());
      const source = byN.get(n);
      if (source) {
        el.appendChild(h('button', {
          type: 'button', class: 'cite', dataset: { n: String(n) },
          'aria-label': `Source ${n}: ${source.title}, page ${source.page}`,
          onclick: (event) => openSource(source, event.currentTarget),
        }, `[${n}]`));
      } else {
        el.appendChild(h('span', { class: 'cite-invalid', title: 'This citation names no source' }, `[${n}]`,
          h('span', { class: 'visually-hidden' }, ' (invalid citation)')));
      }
    }
    last = m.index + m[0].length;
  }
  if (last < text.length) el.appendChild(document.createTextNode(text.slice(last)));
}

function sourcesList(sources, cited, openSource) {
  const citedSet = new Set(cited || []);
  const list = h('ol', { class: 'sources' });
  for (const s of sources) {
    const isCited = citedSet.has(s.n);
    list.appendChild(h('li', { class: isCited ? 'source cited' : 'source not-cited', value: s.n },
      h('button', {
        type: 'button', class: 'link-button', dataset: { n: String(s.n) },
        onclick: (event) => openSource(s, event.currentTarget),
      }, `[${s.n}] ${s.title}, page ${s.page}`),
      ' ',
      h('span', { class: `badge ${isCited ? 'badge-cited' : 'badge-not-cited'}` }, isCited ? 'cited' : 'not cited'),
      h('p', { class: 'source-excerpt' }, s.text.length > 240 ? `${s.text.slice(0, 240)}…` : s.text)));
  }
  return list;
}

function answerExtras(answer) {
  const out = [];
  if (answer.no_relevant_sources) {
    out.push(h('p', { class: 'msg msg-warn' }, 'Nothing relevant was found in the chosen collections, so no answer was generated.'));
  }
  if (answer.invalid_citations && answer.invalid_citations.length) {
    out.push(h('p', { class: 'msg msg-warn invalid-citations' },
      `The model cited ${answer.invalid_citations.join(', ')}, which ${answer.invalid_citations.length === 1 ? 'is' : 'are'} not among the sources; removed from the answer.`));
  }
  if (answer.unsupported_sentences && answer.unsupported_sentences.length) {
    const n = answer.unsupported_sentences.length;
    const details = h('details', { class: 'hint unsupported' },
      h('summary', null, `${n} sentence${n === 1 ? '' : 's'} of the model's draft left out: ${n === 1 ? 'it cites' : 'they cite'} no source or say${n === 1 ? 's' : ''} more than the source cited.`));
    for (const sentence of answer.unsupported_sentences) details.appendChild(h('p', { class: 'dropped' }, sentence));
    out.push(details);
  }
  if (answer.uncited_sentences && answer.uncited_sentences.length) {
    out.push(h('p', { class: 'hint' }, `${answer.uncited_sentences.length} sentence${answer.uncited_sentences.length === 1 ? '' : 's'} marked “no source” cite${answer.uncited_sentences.length === 1 ? 's' : ''} nothing: check them against the documents.`));
  }
  return out;
}

export async function render(main, ctx) {
  main.classList.add('wide');
  const conversationId = ctx.params.conversation || null;
  const abort = new AbortController();
  const panelId = 'source-panel';
  const panel = h('aside', { class: 'source-panel card', id: panelId, 'aria-label': 'Source', tabindex: '-1' },
    h('h2', null, 'Source'),
    h('p', { class: 'hint' }, 'Choose a citation such as [1] to see the passage in its document.'));
  const convList = h('div', { id: 'conversation-list' });
  const side = h('aside', { class: 'conversations', 'aria-labelledby': 'conversations-title' },
    h('h2', { id: 'conversations-title' }, 'Conversations'),
    h('p', null, h('a', { class: 'button secondary small', href: '#/ask' }, 'New conversation')),
    convList);
  const center = h('section', { class: 'conversation', 'aria-labelledby': 'conversation-title' });
  main.append(h('h1', null, 'Ask your documents'), h('div', { class: 'ask-layout' }, side, center, panel));

  let panelCleanup = null;
  async function openSource(source, trigger) {
    if (panelCleanup) panelCleanup();
    document.querySelectorAll('.cite.active, .link-button.active').forEach((b) => b.classList.remove('active'));
    if (trigger) trigger.classList.add('active');
    clear(panel);
    const close = h('button', {
      type: 'button', class: 'secondary small close', onclick: () => {
        clear(panel).append(h('h2', null, 'Source'), h('p', { class: 'hint' }, 'Choose a citation to see its passage.'));
        if (trigger) trigger.focus();
      },
    }, 'Close source');
    const label = h('p', { class: 'source-label' }, `Source [${source.n}] · cited at page ${source.page}`);
    const box = h('div', { class: 'viewer' });
    panel.append(h('div', { class: 'panel-head' }, label, close), box);
    panel.focus();
    try {
      panelCleanup = await showDocument(box, {
        documentId: source.document_id, page: source.page, chunkId: source.chunk_id, quote: source.text, headingLevel: 3,
      });
    } catch { /* shown in the box */ }
  }

  // Conversation list.
  async function loadList() {
    let conversations;
    try {
      conversations = await api('/v1/conversations');
    } catch (err) {
      clear(convList).appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
      return;
    }
    clear(convList);
    if (!conversations.length) { convList.appendChild(h('p', { class: 'empty' }, 'No conversations yet.')); return; }
    const ul = h('ul', { class: 'conversation-links' });
    conversations.sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
    for (const c of conversations) {
      const name = c.title || 'Untitled conversation';
      ul.appendChild(h('li', { class: c.id === conversationId ? 'current' : '' },
        h('a', { href: `#/ask/${encodeURIComponent(c.id)}`, 'aria-current': c.id === conversationId ? 'page' : null }, name),
        h('span', { class: 'meta' }, `${c.collections.join(', ')} · ${c.turns} turn${c.turns === 1 ? '' : 's'}`),
        h('button', {
          type: 'button', class: 'small danger', 'aria-label': `Delete conversation ${name}`,
          onclick: async () => {
            if (!(await confirmDialog('Delete this conversation?', `“${name}” and its answers will be deleted for you. The audit log keeps its record.`))) return;
            try {
              await api(`/v1/conversations/${encodeURIComponent(c.id)}`, { method: 'DELETE' });
              ctx.announce('Conversation deleted.');
              if (c.id === conversationId) ctx.navigate('ask'); else loadList();
            } catch (err) { ctx.announce(err.message); }
          },
        }, 'Delete')));
    }
    convList.appendChild(ul);
  }
  loadList();

  // The conversation (or a new one).
  const turns = h('ol', { class: 'turns', 'aria-label': 'Questions and answers' });
  const question = h('textarea', { id: 'question', rows: 3, required: true, maxlength: 4096 });
  const askButton = h('button', { type: 'submit', class: 'primary', id: 'ask-button' }, 'Ask');
  const form = h('form', { class: 'ask-form' },
    h('div', { class: 'field' }, h('label', { for: 'question' }, conversationId ? 'Follow-up question' : 'Question'), question),
    h('div', { class: 'actions' }, askButton));
  let conversation = null;
  let picker = null;
  const headerBox = h('div', { class: 'conversation-head' });
  center.append(headerBox, turns, form);

  if (conversationId) {
    try {
      conversation = await api(`/v1/conversations/${encodeURIComponent(conversationId)}`);
    } catch (err) {
      headerBox.append(h('h2', { id: 'conversation-title' }, 'Conversation'), h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
      form.hidden = true;
      return () => abort.abort();
    }
    renderHead();
    for (const turn of conversation.turns || []) {
      turns.appendChild(turnView(turn.question, turn.sources || [], turn.answer, turn.asked_at));
    }
  } else {
    headerBox.appendChild(h('h2', { id: 'conversation-title' }, 'New conversation'));
    const boxes = h('div', { class: 'checks' }, h('p', { class: 'loading' }, 'Loading collections…'));
    picker = h('fieldset', { class: 'collection-picker' }, h('legend', null, 'Collections to ask'), boxes);
    headerBox.appendChild(picker);
    try {
      const collections = await api('/v1/collections');
      clear(boxes);
      if (!collections.length) boxes.appendChild(h('p', { class: 'empty' }, 'You may not ask about any collection yet.'));
      for (const c of collections) {
        const id = uid('coll');
        boxes.appendChild(h('div', { class: 'check' },
          h('input', { type: 'checkbox', id, name: 'collections', value: c.name, checked: true }),
          h('label', { for: id }, `${c.name} (${c.num_documents})`)));
      }
    } catch (err) {
      clear(boxes).appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
    }
  }

  function renderHead() {
    clear(headerBox);
    const exportBase = `/v1/conversations/${encodeURIComponent(conversation.id)}/export`;
    headerBox.append(
      h('h2', { id: 'conversation-title' }, conversation.title || 'Conversation'),
      h('p', { class: 'meta' }, `Collections: ${conversation.collections.join(', ')}`),
      h('p', { class: 'export' }, 'Export with citations: ',
        h('a', { class: 'button small secondary', href: `${exportBase}?format=docx`, download: '' }, 'Word (DOCX)'), ' ',
        h('a', { class: 'button small secondary', href: `${exportBase}?format=pdf`, download: '' }, 'PDF')));
  }

  function turnView(q, sources, answer, askedAt) {
    const li = h('li', { class: 'turn' });
    li.append(h('div', { class: 'question' }, h('span', { class: 'who' }, 'You asked'), askedAt ? h('span', { class: 'meta' }, ` ${formatTime(askedAt)}`) : null,
      h('p', null, q)));
    const answerBox = h('div', { class: 'answer', 'aria-live': 'off' }, h('span', { class: 'who' }, 'Answer'));
    li.appendChild(answerBox);
    if (answer) fillAnswer(answerBox, answer, sources);
    return li;
  }

  function fillAnswer(answerBox, answer, sources) {
    answerBox.querySelectorAll('.answer-text, .answer-streaming, .sources-block, .msg, .hint').forEach((n) => n.remove());
    answerBox.appendChild(renderAnswer(answer, sources, openSource));
    answerBox.append(...answerExtras(answer));
    if (sources.length) {
      answerBox.appendChild(h('div', { class: 'sources-block' },
        h('h3', null, `Sources given to the model (${sources.length})`),
        sourcesList(sources, answer.cited, openSource)));
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text) { question.focus(); return; }
    const clicked = performance.now();
    askButton.disabled = true;
    try {
      if (!conversation) {
        const chosen = picker ? Array.from(picker.querySelectorAll('input:checked')).map((i) => i.value) : [];
        if (!chosen.length) throw new Error('Choose at least one collection.');
        conversation = await api('/v1/conversations', { method: 'POST', body: { collections: chosen } });
        history.replaceState(null, '', `#/ask/${encodeURIComponent(conversation.id)}`);
        renderHead();
        form.querySelector('label').textContent = 'Follow-up question';
      }
      const li = turnView(text, [], null, null);
      turns.appendChild(li);
      question.value = '';
      const answerBox = li.querySelector('.answer');
      const streaming = h('p', { class: 'answer-streaming', 'aria-busy': 'true' }, h('span', { class: 'thinking' }, 'Finding sources…'));
      answerBox.appendChild(streaming);
      let sources = [];
      let firstToken = null;
      let done = false;
      await streamEvents(`/v1/conversations/${encodeURIComponent(conversation.id)}/ask`, { question: text }, (name, data) => {
        if (name === 'sources') {
          sources = data.sources || [];
          streaming.firstChild.textContent = `Read ${sources.length} sources; writing…`;
        } else if (name === 'token') {
          if (firstToken === null) {
            firstToken = performance.now();
            window.vellumMetrics.askToFirstTokenMs = firstToken - clicked;
            clear(streaming);
            // The model's draft: only its sentences that the sources support reach the answer.
            streaming.appendChild(h('span', { class: 'draft-label' }, 'Draft, checked against the sources when complete: '));
          }
          streaming.appendChild(document.createTextNode(data.text));
        } else if (name === 'answer') {
          done = true;
          window.vellumMetrics.askToAnswerMs = performance.now() - clicked;
          fillAnswer(answerBox, data, sources);
          answerBox.appendChild(h('p', { class: 'meta timing' },
            firstToken !== null ? `First words after ${((firstToken - clicked) / 1000).toFixed(2)} s; complete after ${((performance.now() - clicked) / 1000).toFixed(1)} s.` : ''));
          ctx.announce('Answer complete.');
        } else if (name === 'error') {
          done = true;
          streaming.remove();
          answerBox.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, data.message || 'The answer failed.'));
        }
      }, { signal: abort.signal });
      if (!done) {
        streaming.removeAttribute('aria-busy');
        answerBox.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, 'The answer stopped before it was complete.'));
      }
      loadList();
      // The server names a conversation after its first question.
      api(`/v1/conversations/${encodeURIComponent(conversation.id)}`).then((fresh) => {
        if (fresh.title && fresh.title !== conversation.title) {
          conversation.title = fresh.title;
          const titleEl = headerBox.querySelector('#conversation-title');
          if (titleEl) titleEl.textContent = fresh.title;
        }
      }).catch(() => {});
    } catch (err) {
      if (err.name !== 'AbortError') {
        form.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
      }
    } finally {
      askButton.disabled = false;
    }
  });
  return () => { abort.abort(); if (panelCleanup) panelCleanup(); };
}
