import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { useAuth } from '../auth/AuthContext';
import { openStatusStream, type StreamState } from './stream';

const LiveContext = createContext<StreamState>('off');

/** Holds the live status stream open while someone is logged in. */
export function LiveProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const { session } = useAuth();
  const [state, setState] = useState<StreamState>('off');
  const token = session?.token;

  useEffect(() => {
    if (!token) return;
    return openStatusStream({ client, token, onState: setState });
  }, [client, token]);

  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>;
}

export function useLiveState(): StreamState {
  return useContext(LiveContext);
}
