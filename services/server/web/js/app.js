// The shell: session check, navigation, hash routing, focus management on route change.

import { h, clear } from './dom.js';
import { session, loadSession, signOut, isAdmin, onUnauthenticated } from './api.js';
import * as signin from './pages/signin.js';
import * as account from './pages/account.js';
import * as documents from './pages/documents.js';
import * as search from './pages/search.js';
import * as ask from './pages/ask.js';
import * as viewer from './pages/document.js';
import * as summarize from './pages/summarize.js';
import * as admin from './pages/admin.js';

// [pattern, module, options]; pattern segments starting with ':' are parameters.
const routes = [
  ['signin', signin, { public: true }],
  ['account', account, {}],
  ['documents', documents, {}],
  ['search', search, {}],
  ['ask', ask, {}],
  ['ask/:conversation', ask, {}],
  ['document/:id', viewer, {}],
  ['summarize/:id', summarize, {}],
  ['admin/users', admin.users, { admin: true }],
  ['admin/keys', admin.keys, { admin: true }],
  ['admin/audit', admin.audit, { admin: true }],
  ['admin/quarantine', admin.quarantine, { admin: true }],
  ['admin/status', admin.status, { admin: true }],
];

const navItems = [
  ['documents', 'Documents'],
  ['search', 'Search'],
  ['ask', 'Ask'],
  ['admin/users', 'Admin', { admin: true, prefix: 'admin/' }],
  ['account', 'Account'],
];

/** `#/a/b?x=1` → {path: 'a/b', query: URLSearchParams} */
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  return { path: path.replace(/\/+$/, ''), query };
}

function match(path) {
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  for (const [pattern, module, options] of routes) {
    const pat = pattern.split('/');
    if (pat.length !== parts.length) continue;
    const params = {};
    let ok = true;
    pat.forEach((seg, i) => {
      if (seg.startsWith(':')) params[seg.slice(1)] = parts[i];
      else if (seg !== parts[i]) ok = false;
    });
    if (ok) return { module, options, params };
  }
  return null;
}

export function navigate(path) {
  const target = `#/${path}`;
  if (location.hash === target) route();
  else location.hash = target;
}

let current = null; // {cleanup}
let returnTo = null;

function renderNav(activePath) {
  const nav = document.getElementById('main-nav');
  clear(nav);
  const userArea = document.getElementById('user-area');
  clear(userArea);
  if (!session.user) return;
  const list = h('ul', null);
  for (const [path, label, opts = {}] of navItems) {
    if (opts.admin && !isAdmin()) continue;
    const active = activePath === path || (opts.prefix && activePath.startsWith(opts.prefix))
      || (path === 'ask' && activePath.startsWith('ask/'));
    list.appendChild(h('li', null, h('a', { href: `#/${path}`, 'aria-current': active ? 'page' : null }, label)));
  }
  nav.appendChild(list);
  userArea.appendChild(h('span', { class: 'user-name' }, 'Signed in as ', h('strong', null, session.user.name)));
  userArea.appendChild(h('button', {
    type: 'button', class: 'secondary small', id: 'sign-out',
    onclick: async () => {
      try { await signOut(); } catch { /* the cookie is cleared by the server or expires */ }
      announce('Signed out.');
      navigate('signin');
    },
  }, 'Sign out'));
}

export function announce(text) {
  const live = document.getElementById('live');
  live.textContent = '';
  setTimeout(() => { live.textContent = text; }, 50);
}

async function route() {
  const { path, query } = parseHash();
  if (current && current.cleanup) {
    try { current.cleanup(); } catch { /* ignore */ }
  }
  current = null;
  const main = document.getElementById('main');

  if (!path) { navigate(session.user ? 'documents' : 'signin'); return; }
  const found = match(path);
  if (!found) {
    renderNav(path);
    clear(main);
    main.appendChild(h('h1', { tabindex: '-1' }, 'Page not found'));
    main.appendChild(h('p', null, 'There is no page here. ', h('a', { href: '#/documents' }, 'Go to the documents.')));
    focusHeading(main, 'Page not found');
    return;
  }
  if (!found.options.public && !session.user) {
    returnTo = `${path}${query.toString() ? `?${query}` : ''}`;
    navigate('signin');
    return;
  }
  if (session.user && session.mustChangePassword && path !== 'account' && path !== 'signin') {
    navigate('account');
    return;
  }
  if (found.options.admin && !isAdmin()) {
    renderNav(path);
    clear(main);
    main.appendChild(h('h1', { tabindex: '-1' }, 'Administrators only'));
    main.appendChild(h('p', null, 'This page is for administrators.'));
    focusHeading(main, 'Administrators only');
    return;
  }
  renderNav(path);
  clear(main);
  main.classList.remove('wide');
  const ctx = {
    params: found.params,
    query,
    navigate,
    announce,
    afterSignIn: () => {
      const target = returnTo && !returnTo.startsWith('signin') ? returnTo : 'documents';
      returnTo = null;
      navigate(session.mustChangePassword ? 'account' : target);
    },
  };
  const token = {};
  current = token;
  let result;
  try {
    result = found.module.render(main, ctx);
  } catch (err) {
    main.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, `This page failed: ${err.message}`));
  }
  const title = (found.module.title && found.module.title(ctx)) || 'Vellum';
  document.title = `${title} · Vellum`;
  focusHeading(main, title);
  if (result && typeof result.then === 'function') {
    result.then((cleanup) => { if (current === token) token.cleanup = cleanup; })
      .catch((err) => {
        if (current !== token) return;
        main.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message || String(err)));
      });
  } else if (typeof result === 'function') {
    token.cleanup = result;
  }
}

/** Moves focus to the page's heading so screen readers and keyboards start at the content. */
function focusHeading(main, title) {
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: false });
  } else {
    main.focus();
  }
  announce(`${title} page`);
}

async function start() {
  document.getElementById('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    const main = document.getElementById('main');
    (main.querySelector('h1') || main).focus();
  });
  onUnauthenticated(() => {
    if (!session.user) return;
    session.user = null;
    const { path } = parseHash();
    if (path !== 'signin') {
      returnTo = path;
      navigate('signin');
    }
  });
  try {
    await loadSession();
  } catch (err) {
    const main = document.getElementById('main');
    clear(main);
    main.appendChild(h('h1', null, 'Vellum is not reachable'));
    main.appendChild(h('p', { class: 'msg msg-error', role: 'alert' }, err.message));
    return;
  }
  window.addEventListener('hashchange', route);
  route();
}

start();
