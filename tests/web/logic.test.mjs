// The explorer's pure logic (web/js/logic.mjs) under `node --test`, with
// answers computed by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_STATE, argsortDesc, decodeF32, entropy, hookSpec, kl, logSoftmax, parseThresholds, processLogits,
  queryToState, rankBucket, samplingDistribution, sequentialColour, softmax, stateToQuery, textOn,
  visibleToken,
} from '../../web/js/logic.mjs';

const close = (a, b, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('rank buckets: top 1/10/100/1000/rest, the first token has none', () => {
  assert.deepEqual([0, 1, 9, 10, 99, 100, 999, 1000, 50000].map((r) => rankBucket(r)),
    [0, 1, 1, 2, 2, 3, 3, 4, 4]);
  assert.equal(rankBucket(null), -1);
  assert.deepEqual([0, 2, 3, 7].map((r) => rankBucket(r, [3, 5])), [0, 0, 1, 2]);
});

test('bucket thresholds are parsed strictly', () => {
  assert.deepEqual(parseThresholds('1, 10,100'), [1, 10, 100]);
  for (const bad of ['', '10,1', '1,1', '0,5', 'a', '1.5', '-1']) assert.equal(parseThresholds(bad), null, bad);
});

test('softmax of {1,2,3}, with temperature, and -inf', () => {
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)], s = e[0] + e[1] + e[2];
  softmax([1, 2, 3]).forEach((p, i) => close(p, e[i] / s));
  const t = softmax([1, 2, 3], 2), e2 = [Math.exp(0.5), Math.exp(1), Math.exp(1.5)];
  t.forEach((p, i) => close(p, e2[i] / (e2[0] + e2[1] + e2[2])));
  assert.deepEqual(Array.from(softmax([1, 5, 5, 2], 0)), [0, 1, 0, 0]);
  assert.deepEqual(Array.from(softmax([0, -Infinity])), [1, 0]);
  // large logits do not overflow
  close(softmax([1000, 1000])[0], 0.5);
});

test('temperature sharpens and flattens as softmax predicts', () => {
  const x = [2, 1, 0.5, -1];
  const p1 = softmax(x, 1), p05 = softmax(x, 0.5), p2 = softmax(x, 2);
  assert.ok(p05[0] > p1[0] && p1[0] > p2[0]);
  assert.ok(entropy(p05) < entropy(p1) && entropy(p1) < entropy(p2));
  // p_T(i) / p_T(j) = exp((x_i - x_j) / T)
  close(p2[0] / p2[1], Math.exp(0.5), 1e-12);
});

test('log-softmax and entropy', () => {
  const lp = logSoftmax([1, 2, 3]), p = softmax([1, 2, 3]);
  lp.forEach((v, i) => close(v, Math.log(p[i])));
  close(entropy([0.5, 0.5]), Math.log(2));
  close(entropy([1, 0]), 0);
  close(kl([0.5, 0.5], [0.5, 0.5]), 0);
  close(kl([1, 0], [0.5, 0.5]), Math.log(2));
});

test('top-k keeps the k highest and the ties of the k-th', () => {
  const out = processLogits([3, 1, 2, 2, 0], { topK: 2 });
  assert.deepEqual(Array.from(out), [3, -Infinity, 2, 2, -Infinity]);
  assert.deepEqual(Array.from(processLogits([1, 2], { topK: 5 })), [1, 2]);
});

test('top-p: the smallest set reaching top_p, at least one token', () => {
  // probabilities 0.5, 0.25, 0.125, 0.125 (logits log p)
  const x = [0.5, 0.25, 0.125, 0.125].map(Math.log);
  const keep = (p) => Array.from(processLogits(x, { topP: p })).map((v) => v > -Infinity);
  assert.deepEqual(keep(0.5), [true, false, false, false]);
  assert.deepEqual(keep(0.6), [true, true, false, false]);
  assert.deepEqual(keep(0.7), [true, true, false, false]);
  assert.deepEqual(keep(0.9), [true, true, true, true]);
  assert.deepEqual(keep(0.01), [true, false, false, false]);
  const d = samplingDistribution(x, { topP: 0.6 });
  close(d[0], 2 / 3);
  close(d[1], 1 / 3);
});

test('a given sort order gives the same cuts as sorting', () => {
  const x = Array.from({ length: 200 }, (_, i) => Math.sin(i * 12.9898) * 5);
  const order = argsortDesc(x);
  for (const o of [{ topK: 7 }, { topP: 0.3 }, { temperature: 0.7, topK: 50, topP: 0.9 }])
    assert.deepEqual(Array.from(processLogits(x, { ...o, order })), Array.from(processLogits(x, o)));
});

test('temperature then top-k then top-p, as transformers orders the warpers', () => {
  const x = [4, 3, 2, 1];
  const out = processLogits(x, { temperature: 2, topK: 3, topP: 0.9 });
  assert.equal(out[3], -Infinity);
  close(out[0], 2);
  const greedy = processLogits(x, { temperature: 0 });
  assert.deepEqual(Array.from(greedy), [0, -Infinity, -Infinity, -Infinity]);
});

test('the URL state round-trips, defaults left out, hooks repeated', () => {
  const s = { ...DEFAULT_STATE, text: 'Hello\nworld & co', pos: 3, temperature: 0.7, view: 'lens',
    hooks: ['blocks.0.hook_mlp_out:zero', 'lm_head:set: coffee=max+1'] };
  const q = stateToQuery(s);
  assert.ok(!q.includes('topK'));
  assert.deepEqual(queryToState(q), s);
  assert.equal(stateToQuery(DEFAULT_STATE), '');
  const bad = queryToState('pos=abc&temperature=&unknown=1&text=x');
  assert.equal(bad.pos, DEFAULT_STATE.pos);
  assert.equal(bad.temperature, DEFAULT_STATE.temperature);
  assert.equal(bad.text, 'x');
});

test('hook specs in the CLI syntax', () => {
  assert.equal(hookSpec({ point: 'blocks.3.hook_mlp_out', op: 'zero' }), 'blocks.3.hook_mlp_out:zero');
  assert.equal(hookSpec({ point: 'blocks.3.hook_resid_post', positions: '-1', op: 'scale', strength: 0.5 }),
    'blocks.3.hook_resid_post@-1:scale:0.5');
  assert.equal(hookSpec({ op: 'set', token: ' coffee', strength: 2 }), 'lm_head:set: coffee=max+2');
  assert.equal(hookSpec({ op: 'set', token: ' coffee', strength: -3 }), 'lm_head:set: coffee=max-3');
  assert.throws(() => hookSpec({ op: 'nope' }));
});

test('base64 float32 decoding, visible whitespace, colours', () => {
  const f = new Float32Array([1.5, -2, 3.25e-8, Infinity]);
  const b64 = Buffer.from(f.buffer).toString('base64');
  assert.deepEqual(Array.from(decodeF32(b64)), Array.from(f));
  assert.equal(visibleToken(' a\n\tb'), '\u00b7a\u21b5\u2192b');
  assert.equal(sequentialColour(0), '#440154');
  assert.equal(sequentialColour(1), '#fde725');
  assert.equal(sequentialColour(NaN), '#888888');
  assert.equal(textOn('#ffffff'), '#000000');
  assert.equal(textOn('#000000'), '#ffffff');
});
