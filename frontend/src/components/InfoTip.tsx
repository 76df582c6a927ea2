import { useId } from 'react';

/** A small "i" that shows an explanation on hover and on keyboard focus. */
export function InfoTip({ text, label = 'How is this computed?' }: { text: string; label?: string }) {
  const id = useId();
  return (
    <span className="infotip">
      <button type="button" className="infotip-button" aria-label={label} aria-describedby={id}>
        i
      </button>
      <span role="tooltip" id={id} className="infotip-text">
        {text}
      </span>
    </span>
  );
}
