import { Link } from 'react-router-dom';
import { useRecentEvents } from '../live/recent';
import { StatusBadge } from './StatusBadge';
import { Age } from './Age';
import { EmptyState } from './QueryStates';

const REASONS: Record<string, string> = {
  registered: 'connected',
  heartbeat: 'heartbeat resumed',
  disconnected: 'disconnected',
  ttl_expired: 'heartbeat TTL expired',
  independence_on: 'independence switched on',
  independence_off: 'independence switched off',
  deregistered: 'deregistered',
};

/** Status changes received on the live stream since this page was opened. */
export function RecentEvents({ limit = 15 }: { limit?: number }) {
  const events = useRecentEvents().slice(0, limit);
  if (events.length === 0) {
    return (
      <EmptyState title="No status changes yet">
        Changes appear here the moment an orchestrator connects, goes silent or changes mode.
      </EmptyState>
    );
  }
  return (
    <ol className="events" aria-label="Recent status events">
      {events.map((e) => (
        <li key={`${e.orchestrator_id}-${e.at}-${e.reason}`} className="event">
          <Age at={e.at} className="event-time muted" />
          <div className="event-main">
            <div className="event-what">
              <Link to={`/orchestrators/${encodeURIComponent(e.orchestrator_id)}`} className="mono">
                {e.orchestrator_id}
              </Link>{' '}
              <span className="muted">{REASONS[e.reason] ?? e.reason}</span>
            </div>
            <div className="event-change">
              {e.previous_status && (
                <>
                  <StatusBadge record={{ status: e.previous_status, is_independent: e.previous_status === 'independent' }} />
                  <span aria-label="became"> → </span>
                </>
              )}
              <StatusBadge record={e} />
            </div>
          </div>
        </li>
      ))}
    </ol>
  );
}
