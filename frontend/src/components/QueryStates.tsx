import type { ReactNode } from 'react';
import { ApiError, errorMessage } from '../api/client';

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function ErrorState({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  let title = 'Could not load this';
  let hint = errorMessage(error);
  if (error instanceof ApiError) {
    if (error.status === 403) {
      title = 'Not allowed';
      hint = `Your account may not see this. (${error.message})`;
    } else if (error.status === 404) {
      title = 'Not found';
    } else if (error.code === 'network' || error.status >= 500) {
      title = 'The controller is unreachable';
    }
  }
  return (
    <div className="state state-error" role="alert">
      <strong>{title}</strong>
      <p>{hint}</p>
      {onRetry && (
        <button type="button" className="btn" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <strong>{title}</strong>
      {children && <div className="muted">{children}</div>}
    </div>
  );
}
