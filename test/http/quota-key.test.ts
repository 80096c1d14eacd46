import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { quotaKeyFor } from '../../src/http/admission.js';

// Budget: milliseconds.
void test('quota keys follow the calendar month in UTC, across month and year boundaries in either direction', () => {
  const at = (iso: string): string => quotaKeyFor('acme', new Date(iso));
  assert.equal(at('2026-11-30T23:59:59.999Z'), 'acme:2026-11');
  assert.equal(at('2026-12-01T00:00:00.000Z'), 'acme:2026-12');
  assert.equal(at('2026-12-31T23:59:59.999Z'), 'acme:2026-12');
  assert.equal(at('2027-01-01T00:00:00.000Z'), 'acme:2027-01');
  assert.equal(at('2026-02-28T12:00:00.000Z'), 'acme:2026-02');
  assert.equal(at('2028-02-29T23:59:59.999Z'), 'acme:2028-02');
  assert.equal(at('2028-03-01T00:00:00.000Z'), 'acme:2028-03');
  assert.equal(quotaKeyFor('beta', new Date('2028-03-15T00:00:00.000-05:00')), 'beta:2028-03');
  assert.equal(quotaKeyFor('beta', new Date('2028-03-31T22:00:00.000-05:00')), 'beta:2028-04');
});

void test('a time in milliseconds gives the same key as a Date, for many tenants, and going back a month after a change', () => {
  const nov = Date.parse('2026-11-30T23:59:59.999Z');
  const dec = nov + 1;
  for (let i = 0; i < 20_050; i++) assert.equal(quotaKeyFor(`t${i % 12_000}`, i % 2 === 0 ? nov : dec), `t${i % 12_000}:${i % 2 === 0 ? '2026-11' : '2026-12'}`);
  assert.equal(quotaKeyFor('acme', dec), quotaKeyFor('acme', new Date(dec)));
  assert.equal(quotaKeyFor('acme', nov), 'acme:2026-11');
});
