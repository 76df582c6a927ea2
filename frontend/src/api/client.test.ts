import { describe, expect, it } from 'vitest';
import { ApiError, errorMessage } from './client';

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
