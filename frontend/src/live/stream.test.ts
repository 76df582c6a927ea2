import { describe, expect, it, vi } from 'vitest';
import { parseStatusEvent } from './stream-parse';

describe('parseStatusEvent', () => {
  it('reads the SSE payload', () => {
    const e = parseStatusEvent(
      JSON.stringify({
        orchestrator_id: 'orch-1',
        organization_id: 'org-1',
        status: 'independent',
        previous_status: 'active',
        is_independent: true,
        last_seen: '2026-11-27T10:00:00Z',
        reason: 'independence_on',
        at: '2026-11-27T10:00:01Z',
      }),
    );
    expect(e).toMatchObject({ orchestrator_id: 'orch-1', status: 'independent', previous_status: 'active' });
  });

  it('tolerates missing optional fields and rejects malformed payloads', () => {
    const minimal = parseStatusEvent(
      '{"orchestrator_id":"a","organization_id":"o","status":"active","is_independent":false,"reason":"registered","at":"2026-11-27T10:00:00Z"}',
    );
    expect(minimal).toMatchObject({ last_seen: null, previous_status: null });
    expect(parseStatusEvent('not json')).toBeNull();
    expect(parseStatusEvent('{"orchestrator_id":"a","status":"weird"}')).toBeNull();
    expect(parseStatusEvent('null')).toBeNull();
  });
});

describe('throttle', () => {
  it('runs soon after the first call, then at most once per interval', async () => {
    const { throttle } = await import('./stream');
    vi.useFakeTimers();
    try {
      let runs = 0;
      const t = throttle(() => (runs += 1), 3_000, 150);
      t();
      t();
      vi.advanceTimersByTime(150);
      expect(runs).toBe(1);
      t(); // within the interval: waits for it
      vi.advanceTimersByTime(1_000);
      expect(runs).toBe(1);
      t();
      vi.advanceTimersByTime(2_000);
      expect(runs).toBe(2);
      vi.advanceTimersByTime(10_000);
      t();
      vi.advanceTimersByTime(150);
      expect(runs).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('throttleWithTrailing', () => {
  it('runs like throttle, then once more after the calls stop', async () => {
    const { throttleWithTrailing } = await import('./stream');
    vi.useFakeTimers();
    try {
      let runs = 0;
      const t = throttleWithTrailing(() => (runs += 1), 2_000, 2_500);
      t();
      vi.advanceTimersByTime(150);
      expect(runs).toBe(1);
      // A burst: the throttle runs every 2 s, the trailing call waits for the quiet.
      for (let i = 0; i < 10; i += 1) {
        t();
        vi.advanceTimersByTime(500);
      }
      expect(runs).toBe(3);
      vi.advanceTimersByTime(1_000); // the throttle's call asked for during the burst
      expect(runs).toBe(4);
      vi.advanceTimersByTime(1_000); // 2.5 s after the last call
      expect(runs).toBe(5);
      vi.advanceTimersByTime(10_000);
      expect(runs).toBe(5);
    } finally {
      vi.useRealTimers();
    }
  });
});
