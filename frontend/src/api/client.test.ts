import { afterEach, describe, expect, it } from 'vitest';
import { ApiError, api, errorMessage } from './client';
import { endSession, getSession, startSession, subscribeSession, type Session } from '../auth/session';

describe('errorMessage', () => {
  it('says plainly that a 403 is a refusal', () => {
    expect(errorMessage(new ApiError(403, 'forbidden', 'this needs the org_admin role'))).toBe(
      'Not allowed — this needs the org_admin role',
    );
  });

  it('passes other API messages through', () => {
    expect(errorMessage(new ApiError(409, 'conflict', 'user vera already exists'))).toBe('user vera already exists');
    expect(errorMessage(new Error('boom'))).toBe('boom');
    expect(errorMessage('?')).toBe('Something went wrong.');
  });
});

describe('a 401 answer', () => {
  const user = (token: string): Session => ({
    username: 'admin',
    role: 'superadmin',
    organization_ids: [],
    token,
    expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  });
  const unauthorized = () =>
    new Response(JSON.stringify({ success: false, error: { code: 'unauthorized', message: 'no session' } }), {
      status: 401,
      headers: { 'content-type': 'application/json' },
    });

  afterEach(() => endSession('logout'));

  it('ends the session it was sent with, as expired', async () => {
    startSession(user('token-a'));
    const reasons: string[] = [];
    const off = subscribeSession((s, reason) => {
      if (!s) reasons.push(reason ?? '');
    });
    await api.GET('/api/v1/controller/overview', { fetch: async () => unauthorized() });
    off();
    expect(getSession()).toBeNull();
    expect(reasons).toEqual(['expired']);
  });

  it('leaves alone a session started while the request was in flight', async () => {
    startSession(user('token-old'));
    await api.GET('/api/v1/controller/overview', {
      fetch: async () => {
        // The operator logged out and in again before this answer arrived.
        startSession(user('token-new'));
        return unauthorized();
      },
    });
    expect(getSession()?.token).toBe('token-new');
  });
});
