import { useNow } from '../lib/useNow';
import { formatAge, formatDateTime } from '../lib/time';

/** Time since an instant, ticking every second ("12s ago"); the exact time on hover. */
export function Age({ at, className }: { at: string | null | undefined; className?: string }) {
  const now = useNow();
  return (
    <time className={className} dateTime={at ?? undefined} title={at ? formatDateTime(at) : undefined}>
      {formatAge(at, now)}
    </time>
  );
}
