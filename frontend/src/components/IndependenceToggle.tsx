import { useState } from 'react';
import { useSetIndependence } from '../api/queries';
import { errorMessage } from '../api/client';
import type { Orchestrator } from '../api/types';
import { usePermissions } from '../auth/AuthContext';
import { ConfirmDialog } from './ConfirmDialog';
import { useToast } from './Toasts';

/**
 * The independence switch of one orchestrator, for those who may operate it (nothing for a
 * viewer: the status badge says whether it is independent). Asks first; the badge flips at
 * once and flips back with an error notice if the controller refuses.
 */
export function IndependenceToggle({ orchestrator }: { orchestrator: Orchestrator }) {
  const permissions = usePermissions();
  if (!permissions.canOperate(orchestrator.organization_id)) return null;
  return <Toggle orchestrator={orchestrator} />;
}

function Toggle({ orchestrator }: { orchestrator: Orchestrator }) {
  const [asking, setAsking] = useState(false);
  const mutation = useSetIndependence();
  const notify = useToast();
  const on = orchestrator.is_independent;
  const name = orchestrator.name || orchestrator.orchestrator_id;

  const confirm = () => {
    setAsking(false);
    mutation.mutate(
      { id: orchestrator.orchestrator_id, isIndependent: !on },
      {
        onSuccess: (r) =>
          notify('success', r.is_independent ? `${name} now operates independently` : `${name} is supervised again`),
        onError: (e) => notify('error', `Could not switch independence of ${name}: ${errorMessage(e)}`),
      },
    );
  };

  return (
    <>
      <button
        type="button"
        role="switch"
        aria-checked={on}
        className={`switch${on ? ' switch-on' : ''}`}
        onClick={() => setAsking(true)}
        disabled={mutation.isPending}
        data-testid={`independence-${orchestrator.orchestrator_id}`}
      >
        <span className="switch-track" aria-hidden="true">
          <span className="switch-thumb" />
        </span>
        Independence mode
      </button>
      <ConfirmDialog
        open={asking}
        title={on ? `Supervise ${name} again?` : `Make ${name} independent?`}
        confirmLabel={on ? 'Turn independence off' : 'Turn independence on'}
        tone={on ? 'primary' : 'danger'}
        onConfirm={confirm}
        onCancel={() => setAsking(false)}
      >
        {on ? (
          <p>
            The controller resumes processing its heartbeats and shows its messages again. The orchestrator is told to
            resume monitoring.
          </p>
        ) : (
          <p>
            The controller stops supervising it: its heartbeats are ignored, its messages are hidden, and it receives{' '}
            <code>stop_monitoring</code> right away.
          </p>
        )}
      </ConfirmDialog>
    </>
  );
}
