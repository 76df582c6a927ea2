import { useEffect, useState } from 'react';

/** Copies `text` to the clipboard and says so; tells the operator to copy by hand if it cannot. */
export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  useEffect(() => {
    if (state === 'idle') return;
    const timer = setTimeout(() => setState('idle'), 2_500);
    return () => clearTimeout(timer);
  }, [state]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState('copied');
    } catch {
      setState('failed');
    }
  };
  return (
    <>
      <button type="button" className="btn" onClick={() => void copy()}>
        {state === 'copied' ? 'Copied ✓' : label}
      </button>
      <span className="visually-hidden" role="status">
        {state === 'copied' ? 'Copied to the clipboard' : ''}
      </span>
      {state === 'failed' && (
        <span className="field-error" role="alert">
          The browser refused the clipboard: select the text and copy it.
        </span>
      )}
    </>
  );
}
