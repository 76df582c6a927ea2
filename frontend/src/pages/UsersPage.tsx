import { useOverview } from '../api/queries';

/** The place for users and enrollment tokens, which arrive with the security feature. */
export function UsersPage() {
  const overview = useOverview();
  return (
    <>
      <h1>Users &amp; enrollment tokens</h1>
      <section className="card">
        <h2>Coming with accounts</h2>
        <p>
          Operator accounts with roles, and enrollment tokens that bind orchestrators to an organization, arrive with
          the controller’s security feature. Until then this controller has a single operator login, configured with{' '}
          <code>MOOLAI_ADMIN_USERNAME</code> / <code>MOOLAI_ADMIN_PASSWORD</code>, and accepts orchestrators without
          credentials.
        </p>
        {overview.data && (
          <p className="muted">User accounts stored on the controller: {overview.data.total_users}.</p>
        )}
      </section>
    </>
  );
}
