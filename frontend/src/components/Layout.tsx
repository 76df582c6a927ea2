import { NavLink, Outlet } from 'react-router-dom';
import { useAuth, usePermissions } from '../auth/AuthContext';
import { ROLE_DESCRIPTIONS, ROLE_LABELS } from '../auth/permissions';
import { useLiveState } from '../live/LiveProvider';
import { useTheme } from '../lib/theme';

const NAV = [
  { to: '/', label: 'Overview', end: true },
  { to: '/orchestrators', label: 'Orchestrators' },
  { to: '/organizations', label: 'Organizations' },
  { to: '/costs', label: 'Costs' },
  { to: '/audit', label: 'Audit log' },
];

const LIVE_TEXT = {
  live: 'Live',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  off: 'Offline',
} as const;

export function Layout() {
  const { session, logout } = useAuth();
  const permissions = usePermissions();
  const live = useLiveState();
  const [theme, cycleTheme] = useTheme();
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">
          <span className="brand-mark" aria-hidden="true" />
          <span>
            Moolai<span className="brand-rest"> Controller</span>
          </span>
        </span>
        <span className={`live live-${live}`} role="status" title="Live status updates from the controller">
          <span className="live-dot" aria-hidden="true" />
          {LIVE_TEXT[live]}
        </span>
        <span className="topbar-spacer" />
        <button
          type="button"
          className="btn btn-ghost"
          onClick={cycleTheme}
          aria-label={`Theme: ${theme}. Change theme`}
          title="Theme: system → light → dark"
        >
          <span aria-hidden="true">{theme === 'dark' ? '☾' : theme === 'light' ? '☀' : '◐'}</span>
          <span className="theme-name">{theme === 'dark' ? 'Dark' : theme === 'light' ? 'Light' : 'System'}</span>
        </button>
        {session && (
          <span
            className="user"
            data-testid="signed-in"
            title={`Signed in as ${session.username}. ${ROLE_DESCRIPTIONS[session.role]}`}
          >
            <span className="visually-hidden">Signed in as </span>
            <span className="user-name">{session.username}</span>
            <span className={`badge badge-role badge-role-${session.role}`}>{ROLE_LABELS[session.role]}</span>
          </span>
        )}
        <button type="button" className="btn" onClick={() => void logout()}>
          Log out
        </button>
      </header>
      <nav className="sidebar" aria-label="Main">
        {NAV.map((item) => (
          <NavLink key={item.to} to={item.to} end={item.end} className="nav-link">
            {item.label}
          </NavLink>
        ))}
        {permissions.manageUsers && (
          <NavLink to="/users" className="nav-link">
            Users
          </NavLink>
        )}
      </nav>
      <main id="main" className="main" tabIndex={-1}>
        <Outlet />
      </main>
    </div>
  );
}
