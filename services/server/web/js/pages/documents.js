import { h, clear, field, formatTime, formatBytes, table, confirmDialog, uid } from '../dom.js';
import { api, uploadFile, session } from '../api.js';

export function title() { return 'Documents'; }

export async function render(main, ctx) {
  main.appendChild(h('h1', null, 'Documents'));
  const uploadSection = h('section', { class: 'card', 'aria-labelledby': 'upload-title' });
  const listSection = h('section', { 'aria-labelledby': 'collections-title' },
    h('h2', { id: 'collections-title', tabindex: '-1' }, 'Collections'));
  const listBody = h('div', { id: 'collections' }, h('p', { class: 'loading' }, 'Loading…'));
  listSection.appendChild(listBody);
  main.append(uploadSection, listSection);

  let collections = [];
  const datalist = h('datalist', { id: 'collection-names' });
  const collection = h('input', { type: 'text', name: 'collection', list: 'collection-names', required: true, autocomplete: 'off' });
  const labels = h('input', { type: 'text', name: 'labels', autocomplete: 'off', pattern: ' *([A-Za-z0-9_\\-]{1,64} *(, *[A-Za-z0-9_\\-]{1,64} *)*)?' });
  const files = h('input', { type: 'file', name: 'files', multiple: true, required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Upload');
  const uploads = h('ul', { class: 'uploads', id: 'upload-list', 'aria-label': 'Uploads' });
  const form = h('form', { id: 'upload-form' },
    h('div', { class: 'row' },
      field('Collection', collection, 'A matter or department, e.g. matter-1234.'),
      field('Labels (optional)', labels, 'Comma-separated access labels, e.g. privileged, phi.'),
      field('Files', files, 'PDF, Word, HTML, e-mail or text; several at once.')),
    datalist,
    h('div', { class: 'actions' }, submit));
  uploadSection.append(h('h2', { id: 'upload-title' }, 'Upload documents'), form, uploads);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = Array.from(files.files);
    if (!chosen.length) { files.focus(); return; }
    submit.disabled = true;
    const items = chosen.map((file) => {
      const progressId = uid('progress');
      const progress = h('progress', { id: progressId, max: 1, value: 0 });
      const status = h('span', { class: 'status status-pending' }, 'pending');
      const li = h('li', { class: 'upload' },
        h('label', { for: progressId, class: 'upload-name' }, `${file.name} (${formatBytes(file.size)})`),
        progress, status);
      uploads.prepend(li);
      return { file, progress, status, li };
    });
    ctx.announce(`Uploading ${items.length} file${items.length === 1 ? '' : 's'}.`);
    // Two at a time: progress for each, without flooding the server's ingest.
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const item = items[next++];
        await uploadOne(item, collection.value.trim(), labels.value.trim());
      }
    };
    await Promise.all([worker(), worker()]);
    submit.disabled = false;
    files.value = '';
    const ready = items.filter((i) => i.status.dataset.state === 'ready').length;
    ctx.announce(`Uploads finished: ${ready} of ${items.length} ready.`);
    await refresh();
  });

  async function uploadOne(item, coll, labelText) {
    const setStatus = (state, text) => {
      item.status.dataset.state = state;
      item.status.className = `status status-${state}`;
      item.status.textContent = text;
    };
    try {
      const { status, body } = await uploadFile(item.file, coll, labelText, (fraction, phase) => {
        item.progress.value = fraction;
        setStatus('pending', phase === 'processing' ? 'pending: extracting and indexing…' : `pending: sending ${Math.round(fraction * 100)}%`);
      });
      item.progress.value = 1;
      if (status === 201 || status === 200) {
        const doc = body.document;
        setStatus('ready', body.duplicate ? 'ready (already in the collection)' : `ready: ${doc.num_pages} page${doc.num_pages === 1 ? '' : 's'}`);
        item.li.dataset.documentId = doc.id;
      } else if (status === 422) {
        setStatus('quarantined', `quarantined: ${(body && body.message) || 'the file could not be read'}`);
      } else {
        setStatus('failed', `failed: ${(body && body.message) || `the server answered ${status}`}`);
      }
    } catch (err) {
      setStatus('failed', `failed: ${err.message}`);
    }
  }

  async function refresh() {
    try {
      collections = await api('/v1/collections');
    } catch (err) {
      clear(listBody).appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
      return;
    }
    clear(datalist);
    const names = new Set(collections.map((c) => c.name));
    // The user's groups are often the matters or departments they work on: offer them too.
    for (const g of (session.user && session.user.groups) || []) names.add(g);
    for (const n of names) datalist.appendChild(h('option', { value: n }));
    if (!collection.value && collections.length) collection.value = collections[0].name;
    const docs = await Promise.all(collections.map((c) =>
      api(`/v1/documents?collection=${encodeURIComponent(c.name)}`).catch((err) => err)));
    clear(listBody);
    if (!collections.length) {
      listBody.appendChild(h('p', { class: 'empty' }, 'No collection you may read has documents yet. Upload some above.'));
      return;
    }
    collections.forEach((c, i) => {
      const headingId = uid('coll');
      const section = h('section', { class: 'collection', 'aria-labelledby': headingId, dataset: { collection: c.name } },
        h('h3', { id: headingId }, c.name, ' ', h('span', { class: 'count' }, `(${c.num_documents} document${c.num_documents === 1 ? '' : 's'})`)));
      const result = docs[i];
      if (result instanceof Error) {
        section.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, result.message));
      } else {
        section.appendChild(documentTable(c.name, result));
      }
      listBody.appendChild(section);
    });
  }

  function documentTable(name, rows) {
    return table(`Documents in ${name}`, [
      { label: 'Title', cell: (d) => h('a', { href: `#/document/${encodeURIComponent(d.id)}` }, d.title || d.file_name) },
      { label: 'File', cell: (d) => h('span', { class: 'file-name' }, d.file_name) },
      { label: 'Format', cell: (d) => d.format },
      { label: 'Pages', cell: (d) => String(d.num_pages) },
      { label: 'Labels', cell: (d) => (d.labels.length ? d.labels.map((l) => h('span', { class: 'tag' }, l)) : '—') },
      { label: 'Status', cell: () => h('span', { class: 'status status-ready' }, 'ready') },
      { label: 'Added', cell: (d) => formatTime(d.ingested_at) },
      {
        label: 'Actions',
        cell: (d) => h('div', { class: 'row-actions' },
          h('a', { class: 'button small secondary', href: `#/summarize/${encodeURIComponent(d.id)}`, 'aria-label': `Summarize ${d.title || d.file_name}` }, 'Summarize'),
          h('button', {
            type: 'button', class: 'small danger', 'aria-label': `Delete ${d.title || d.file_name}`,
            onclick: async (event) => {
              const ok = await confirmDialog('Delete this document?',
                `“${d.title || d.file_name}” will be removed from ${name} and from every index. This cannot be undone.`);
              if (!ok) return;
              try {
                await api(`/v1/documents/${encodeURIComponent(d.id)}`, { method: 'DELETE' });
                ctx.announce(`Deleted ${d.title || d.file_name}.`);
                await refresh();
                document.getElementById('collections-title').focus();
              } catch (err) {
                event.target.after(h('span', { class: 'msg msg-error', role: 'alert' }, err.message));
              }
            },
          }, 'Delete')),
      },
    ], rows, 'No documents in this collection.');
  }

  await refresh();
}
