import { Link } from 'react-router-dom';
import { EmptyState } from '../components/QueryStates';

export function NotFoundPage() {
  return (
    <EmptyState title="Page not found">
      <Link to="/">Back to the overview</Link>
    </EmptyState>
  );
}
