const money = new Intl.NumberFormat('en-US', {
  style: 'currency',
  currency: 'USD',
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
const preciseMoney = new Intl.NumberFormat('en-US', {
  style: 'currency',
  currency: 'USD',
  minimumFractionDigits: 2,
  maximumFractionDigits: 4,
});
const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/** Dollars; amounts under a dollar keep up to four decimals so small usage is not shown as $0.00. */
export function formatMoney(value: number): string {
  return Math.abs(value) > 0 && Math.abs(value) < 1 ? preciseMoney.format(value) : money.format(value);
}

export function formatInteger(value: number): string {
  return integer.format(value);
}

export function formatCompact(value: number): string {
  return compact.format(value);
}

/** Pretty JSON for read-only panels. */
export function formatJson(value: unknown): string {
  return JSON.stringify(value ?? null, null, 2);
}
