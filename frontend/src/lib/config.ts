/** Parses the editor's text into a JSON object, or says what is wrong with it. */
export function parseConfig(text: string): { value: Record<string, unknown> } | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return { error: `Not valid JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { error: 'The session configuration must be a JSON object.' };
  }
  return { value: parsed as Record<string, unknown> };
}
