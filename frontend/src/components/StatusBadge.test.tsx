import { describe, expect, it } from 'vitest';
import { renderToStaticMarkup } from 'react-dom/server';
import { StatusBadge } from './StatusBadge';

describe('StatusBadge', () => {
  it('renders the seed labels with a tone class and an explanation', () => {
    const active = renderToStaticMarkup(<StatusBadge record={{ status: 'active', is_independent: false }} />);
    expect(active).toContain('badge-active');
    expect(active).toContain('active (heartbeat)');
    expect(active).toMatch(/title="Heartbeats are arriving/);
    const independent = renderToStaticMarkup(<StatusBadge record={{ status: 'active', is_independent: true }} />);
    expect(independent).toContain('badge-independent');
    expect(independent).toContain('>independent<');
    expect(renderToStaticMarkup(<StatusBadge record={{ status: 'inactive', is_independent: false }} />)).toContain(
      'badge-inactive',
    );
  });
});
