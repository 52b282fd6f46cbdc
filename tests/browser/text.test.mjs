// Unit tests of the passage matching and snippet terms (services/server/web/js/text.js), in
// Node without a browser: run.sh runs them before the browser tests.
import assert from 'node:assert/strict';
import { words, longestRun, runIsMatch, passageSpan, queryTerms, termRegex } from '../../services/server/web/js/text.js';

let failed = 0;
function check(name, fn) {
  try { fn(); console.log(`ok    text.js: ${name}`); } catch (err) { failed += 1; console.log(`FAIL  text.js: ${name}\n      ${err.message}`); }
}

const page = words(`6. Division of Income and Losses. All income and credits, and all losses and
deductions shall be owned and shared among the Joint Venturers as follows: 50% to Collectible
Concepts Group, Inc. 50% to Pivotal Self Service Tech, Inc.`);

check('words: lowercase letters and digits, NFKC (ligatures, full-width)', () => {
  assert.deepEqual(words('Ｆｕｌｌ-width “ﬁnal” 50%'), ['full', 'width', 'final', '50']);
});

check('longest run finds the quote across different line breaks and punctuation', () => {
  const quote = words('all losses and deductions shall be owned\nand shared among the Joint-Venturers');
  const run = longestRun(page, quote);
  assert.equal(run.length, quote.length);
  assert.equal(page.slice(run.start, run.start + run.length).join(' '), quote.join(' '));
  assert.ok(runIsMatch(run.length, quote.length));
});

check('an extraction difference in the middle: the longest run and the projected span', () => {
  // "credits" is missing from the quote and "deductions" is hyphenated differently.
  const quote = words('All income and, and all losses and deduc- tions shall be owned and shared among the Joint Venturers');
  const run = longestRun(page, quote);
  assert.ok(runIsMatch(run.length, quote.length), `run ${run.length} of ${quote.length}`);
  const [first, last] = passageSpan(page, quote, run);
  const span = page.slice(first, last + 1).join(' ');
  assert.ok(span.startsWith('all income') || span.startsWith('income'), span);
  assert.ok(span.endsWith('joint venturers'), span);
});

check('unrelated text is not a match; a few common words are not enough', () => {
  const quote = words('the term of this agreement shall be five years from the effective date');
  const run = longestRun(page, quote);
  assert.ok(!runIsMatch(run.length, quote.length), `run ${run.length}`);
  assert.ok(!runIsMatch(0, 0));
});

check('query terms drop stop words; the regex finds word starts (stems)', () => {
  assert.deepEqual(queryTerms('What is the termination of the licence?'), ['termination', 'licence']);
  const re = termRegex(queryTerms('terminate licence'));
  const found = 'The Licence terminates; termination is final. Determinate.'.match(re);
  assert.deepEqual(found, ['Licence', 'terminates', 'termination']);
});

if (failed) { console.log(`text.js: ${failed} failed`); process.exit(1); }
