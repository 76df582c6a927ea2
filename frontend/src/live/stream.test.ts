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
