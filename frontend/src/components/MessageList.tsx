import { useDecideMessage } from '../api/queries';
import { errorMessage } from '../api/client';
import type { Decision, Message } from '../api/types';
import { Age } from './Age';
import { useToast } from './Toasts';

/** Messages, with Accept / Dismiss on the pending ones when the operator may decide. */
export function MessageList({
  messages,
  canDecide,
  empty = 'No pending messages.',
}: {
  messages: readonly Message[];
  canDecide: boolean;
  empty?: string;
}) {
  const decide = useDecideMessage();
  const notify = useToast();
  if (messages.length === 0) return <p className="muted">{empty}</p>;
  const act = (m: Message, status: Decision) =>
    decide.mutate(
      { id: m.id, status },
      {
        onSuccess: () =>
          notify(
            'success',
            status === 'accepted' ? 'Message accepted and sent to the orchestrator' : 'Message dismissed',
          ),
        onError: (e) => notify('error', `Could not update the message: ${errorMessage(e)}`),
      },
    );
  return (
    <ul className="messages">
      {messages.map((m) => {
        const busy = decide.isPending && decide.variables.id === m.id;
        return (
          <li key={m.id} className="message" data-message={m.id}>
            <div className="message-head">
              <span className={`tag tag-${m.message_type}`}>{m.message_type}</span>
              <Age at={m.created_at} className="muted small" />
              {m.status !== 'pending' && <span className={`tag tag-${m.status}`}>{m.status}</span>}
              {m.delivered_at && <span className="muted small">delivered</span>}
            </div>
            <p className="message-content">{m.content}</p>
            {m.status === 'pending' && canDecide && (
              <div className="message-actions">
                <button type="button" className="btn btn-primary btn-small" disabled={busy} onClick={() => act(m, 'accepted')}>
                  Accept
                </button>
                <button type="button" className="btn btn-small" disabled={busy} onClick={() => act(m, 'dismissed')}>
                  Dismiss
                </button>
              </div>
            )}
          </li>
        );
      })}
    </ul>
  );
}
