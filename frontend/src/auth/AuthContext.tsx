import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from '../api/client';
import { endSession, getSession, startSession, subscribeSession, type Session, type SessionEndReason } from './session';
import { clearRecent } from '../live/recent';
import { permissionsFor, type Permissions } from './permissions';

interface AuthValue {
  session: Session | null;
  /** Why the last session ended, for the login page. */
  endedBecause: SessionEndReason | null;
  login: (username: string, password: string) => Promise<void>;
  logout: () => Promise<void>;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [session, setSession] = useState<Session | null>(() => getSession());
  const [endedBecause, setEndedBecause] = useState<SessionEndReason | null>(null);

  useEffect(
    () =>
      subscribeSession((next, reason) => {
        setSession(next);
        if (next) {
          setEndedBecause(null);
        } else {
          setEndedBecause(reason ?? 'logout');
          client.clear();
          clearRecent();
        }
      }),
    [client],
  );

  // End the session when it expires, even if the page sits idle.
  useEffect(() => {
    if (!session) return;
    const left = Date.parse(session.expires_at) - Date.now();
    const timer = setTimeout(() => endSession('expired'), Math.max(0, Math.min(left, 2_147_000_000)));
    return () => clearTimeout(timer);
  }, [session]);

  const login = useCallback(async (username: string, password: string) => {
    const result = await unwrap(api.POST('/api/v1/internal/auth/login', { body: { username, password } }));
    startSession(result.user);
  }, []);

  const logout = useCallback(async () => {
    const token = getSession()?.token;
    // Forget the session before the server does: requests still in flight get 401 once the
    // server has ended it, and those must not read as "your session expired".
    endSession('logout');
    if (!token) return;
    try {
      await unwrap(api.POST('/api/v1/internal/auth/logout', { headers: { Authorization: `Bearer ${token}` } }));
    } catch {
      // The server forgets the session at its expiry anyway.
    }
  }, []);

  const value = useMemo(() => ({ session, endedBecause, login, logout }), [session, endedBecause, login, logout]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}

/** What the signed-in operator may do (see permissions.ts); nothing when signed out. */
export function usePermissions(): Permissions {
  const { session } = useAuth();
  return useMemo(() => permissionsFor(session), [session]);
}
