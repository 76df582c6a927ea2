import { describe, expect, it } from 'vitest';
import { parseConfig } from './config';

describe('parseConfig', () => {
  it('accepts a JSON object', () => {
    expect(parseConfig('{"cache":{"enabled":true}}')).toEqual({ value: { cache: { enabled: true } } });
  });
  it('rejects invalid JSON and non-objects with a reason', () => {
    expect(parseConfig('{cache')).toMatchObject({ error: expect.stringMatching(/^Not valid JSON/) });
    for (const text of ['[]', '3', 'null', '"x"']) {
      expect(parseConfig(text)).toEqual({ error: 'The session configuration must be a JSON object.' });
    }
  });
});
