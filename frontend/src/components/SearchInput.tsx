import { useEffect, useState } from 'react';
import { useDebounced } from '../lib/useDebounced';

/** A text filter that reports its value 300 ms after typing stops. */
export function SearchInput({
  label,
  value,
  onChange,
  placeholder,
}: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  placeholder?: string;
}) {
  const [text, setText] = useState(value);
  const debounced = useDebounced(text, 300);
  useEffect(() => {
    if (debounced !== value) onChange(debounced);
    // Only typing drives this; an outside change of `value` resets the text below.
  }, [debounced]);
  useEffect(() => setText(value), [value]);
  return (
    <label className="field field-inline">
      {label}
      <input type="search" value={text} placeholder={placeholder} onChange={(e) => setText(e.target.value)} />
    </label>
  );
}
