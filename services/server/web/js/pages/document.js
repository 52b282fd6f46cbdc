import { h, clear } from '../dom.js';
import { breakGlassMaybe, askBreakGlassReason } from '../api.js';
import { showDocument } from '../viewer.js';

export function title() { return 'Document'; }

export async function render(main, ctx) {
  main.classList.add('wide');
  const id = ctx.params.id;
  const page = Number(ctx.query.get('page') || 1);
  const chunkId = ctx.query.get('chunk') || '';
  const quote = ctx.query.get('quote') || '';
  const box = h('section', { class: 'viewer card', 'aria-label': 'Document', id: 'document-viewer' });
  main.append(
    h('h1', null, 'Document'),
    h('p', { class: 'links' },
      h('a', { href: `#/summarize/${encodeURIComponent(id)}` }, 'Summarize this document'), ' · ',
      h('a', { href: '#/documents' }, 'All documents')),
    box);
  let cleanup = () => {};
  const open = async (breakGlass) => {
    try {
      cleanup = await showDocument(box, { documentId: id, page, chunkId, quote, breakGlass, headingLevel: 2 });
    } catch (err) {
      if (breakGlassMaybe(err) && !breakGlass) {
        box.appendChild(h('p', null, 'If this is an emergency and you need this document, you may ask for emergency access.'));
        box.appendChild(h('button', {
          type: 'button', class: 'secondary', onclick: async () => {
            const reason = await askBreakGlassReason(err);
            if (reason) { clear(box); open(reason); }
          },
        }, 'Request emergency access…'));
      }
    }
  };
  await open(null);
  return () => cleanup();
}
