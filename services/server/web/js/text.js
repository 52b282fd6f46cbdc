// Text helpers: query terms, snippets with <mark> built from DOM nodes, and finding a quoted
// passage in a page's text by its words.

import { h } from './dom.js';

const STOP = new Set(('a an and are as at be by do does did for from has have how i if in is it its of on or ' +
  'that the their there these this to was were what when where which who why will with within ' +
  'under any all can may shall should would could').split(' '));

/** The words of a query worth highlighting (lowercase, no stop words). */
export function queryTerms(query) {
  const words = (query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).filter((w) => w.length > 1 && !STOP.has(w));
  return Array.from(new Set(words));
}

function escapeRegExp(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

/** A regex that finds any of the terms as a word start (so "terminat" finds "termination"). */
export function termRegex(terms) {
  if (!terms.length) return null;
  const stems = terms.map((t) => escapeRegExp(t.length > 5 ? t.slice(0, t.length - 2) : t));
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${stems.join('|')})[\\p{L}\\p{N}]*`, 'giu');
}

/** Appends `text` to `el`, with every match of `regex` wrapped in <mark>. */
export function appendMarked(el, text, regex) {
  if (!regex) { el.appendChild(document.createTextNode(text)); return el; }
  regex.lastIndex = 0;
  let last = 0;
  let m;
  while ((m = regex.exec(text)) !== null) {
    if (m.index > last) el.appendChild(document.createTextNode(text.slice(last, m.index)));
    el.appendChild(h('mark', null, m[0]));
    last = m.index + m[0].length;
    if (m[0].length === 0) regex.lastIndex += 1;
  }
  if (last < text.length) el.appendChild(document.createTextNode(text.slice(last)));
  return el;
}

/** The passage around the first match of the terms, about `width` characters, with marks. */
export function snippet(text, query, width = 320) {
  const clean = text.replace(/\s+/g, ' ').trim();
  const regex = termRegex(queryTerms(query));
  let start = 0;
  if (regex) {
    regex.lastIndex = 0;
    const first = regex.exec(clean);
    if (first) start = Math.max(0, first.index - Math.floor(width / 3));
  }
  if (start > 0) {
    const space = clean.indexOf(' ', start);
    if (space >= 0 && space - start < 30) start = space + 1;
  }
  let end = Math.min(clean.length, start + width);
  if (end < clean.length) {
    const space = clean.lastIndexOf(' ', end);
    if (space > start + width / 2) end = space;
  }
  const p = h('p', { class: 'snippet' });
  if (start > 0) p.appendChild(document.createTextNode('… '));
  appendMarked(p, clean.slice(start, end), regex);
  if (end < clean.length) p.appendChild(document.createTextNode(' …'));
  return p;
}

/** Lowercase words (letters and digits), for matching passages across extractors. */
export function words(text) {
  return (text.toLowerCase().normalize('NFKC').match(/[\p{L}\p{N}]+/gu) || []);
}

/**
 * The longest run of consecutive quote words that appears, in order and consecutively, in the
 * page's words. Returns {start, length} in page-word positions (or length 0).
 * Dynamic programming over (page word, quote word), O(n·m) time, O(m) memory.
 */
export function longestRun(pageWords, quoteWords) {
  const m = quoteWords.length;
  let prev = new Uint16Array(m + 1);
  let cur = new Uint16Array(m + 1);
  let best = 0;
  let bestEnd = -1;
  let bestQuoteEnd = -1;
  for (let i = 1; i <= pageWords.length; i += 1) {
    const pw = pageWords[i - 1];
    for (let j = 1; j <= m; j += 1) {
      if (pw === quoteWords[j - 1]) {
        const v = prev[j - 1] + 1;
        cur[j] = v > 65535 ? 65535 : v;
        if (cur[j] > best) { best = cur[j]; bestEnd = i; bestQuoteEnd = j; }
      } else {
        cur[j] = 0;
      }
    }
    [prev, cur] = [cur, prev];
    cur.fill(0);
  }
  return { start: bestEnd - best, length: best, quoteStart: bestQuoteEnd - best };
}

/**
 * Where the whole quote lies on the page, given its longest matching run: the run projected to
 * the quote's full length, clamped to the page, then trimmed to words the quote contains.
 * Returns [first, last] page-word positions (inclusive).
 */
export function passageSpan(pageWords, quoteWords, run) {
  const quoteSet = new Set(quoteWords);
  let first = Math.max(0, run.start - run.quoteStart);
  let last = Math.min(pageWords.length - 1, run.start + (quoteWords.length - run.quoteStart) - 1);
  while (first < run.start && !quoteSet.has(pageWords[first])) first += 1;
  while (last > run.start + run.length - 1 && !quoteSet.has(pageWords[last])) last -= 1;
  return [first, last];
}

/** Whether a run is long enough to call the passage found. */
export function runIsMatch(runLength, quoteLength) {
  if (quoteLength === 0) return false;
  if (runLength >= quoteLength) return true;
  return runLength >= Math.min(12, Math.max(4, Math.ceil(quoteLength * 0.25)));
}
