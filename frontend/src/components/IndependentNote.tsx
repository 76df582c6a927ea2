export function IndependentNote() {
  return (
    <p className="notice notice-independent" data-testid="independent-note">
      This orchestrator operates independently. The controller ignores its heartbeats, and its recommendation and
      monitoring messages are hidden until independence is turned off.
    </p>
  );
}
