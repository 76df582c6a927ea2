// The one typed API client. Paths, parameters and bodies are checked against the types
// generated from the backend's OpenAPI document (src/api/schema.d.ts).
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';
import { endSession, getSession } from '../auth/session';

/** An API failure with the backend's stable error code (or `network` / `unavailable`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const LOGIN_PATH = '/api/v1/internal/auth/login';

const auth: Middleware = {
  onRequest({ request }) {
    const session = getSession();
    if (session) request.headers.set('Authorization', `Bearer ${session.token}`);
    return request;
  },
  onResponse({ request, response }) {
    // Only a 401 for the current session's token means it expired: a request sent with a
    // token the operator has since replaced or logged out of says nothing about the new one.
    const current = getSession();
    if (
      response.status === 401 &&
      current !== null &&
      request.headers.get('Authorization') === `Bearer ${current.token}` &&
      !new URL(request.url).pathname.endsWith(LOGIN_PATH)
    ) {
      endSession('expired');
    }
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: globalThis.location?.origin ?? 'http://localhost' });
api.use(auth);

function errorDetail(error: unknown): { code: string; message: string } | null {
  if (typeof error !== 'object' || error === null || !('error' in error)) return null;
  const detail = (error as { error: unknown }).error;
  if (typeof detail !== 'object' || detail === null) return null;
  const { code, message } = detail as { code?: unknown; message?: unknown };
  return typeof code === 'string' && typeof message === 'string' ? { code, message } : null;
}

/** Turns an openapi-fetch result into its data, or throws an {@link ApiError}. */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response };
  try {
    result = await call;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(0, 'network', 'Cannot reach the controller API. Check your connection.');
  }
  const { data, error, response } = result;
  if (response.ok && data !== undefined) return data;
  const detail = errorDetail(error);
  if (detail) throw new ApiError(response.status, detail.code, detail.message);
  if (response.status >= 500) {
    throw new ApiError(
      response.status,
      'unavailable',
      `The controller API is not answering (HTTP ${response.status}).`,
    );
  }
  throw new ApiError(response.status, 'unknown', `Unexpected answer from the API (HTTP ${response.status}).`);
}

/** What to tell the operator about a failure; a refusal (403) says plainly that it is one. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError && error.status === 403) return `Not allowed — ${error.message}`;
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return 'Something went wrong.';
}
