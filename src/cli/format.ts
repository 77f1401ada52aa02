/** Small text helpers for the CLI: aligned tables, byte sizes, a progress bar on stderr. */
export function table(rows: (string | number)[][], header?: string[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths = all[0]?.map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length))) ?? [];
  const fmt = (r: (string | number)[]) => r.map((v, c) => (typeof v === 'number' ? String(v).padStart(widths[c]!) : String(v).padEnd(widths[c]!))).join('  ').trimEnd();
  const lines = all.map(fmt);
  if (header) lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines.join('\n');
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const u = ['KiB', 'MiB', 'GiB'];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${u[i]}`;
}

export class Progress {
  private last = 0;
  constructor(private readonly total: number, private readonly label: string, private readonly enabled = true) {}
  update(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (done < this.total && now - this.last < 200) return;
    this.last = now;
    const width = 30;
    const frac = this.total ? Math.min(1, done / this.total) : 1;
    const fill = Math.round(frac * width);
    const line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${this.total}`;
    if (process.stderr.isTTY) process.stderr.write(`\r${line}${done >= this.total ? '\n' : ''}`);
    else if (done >= this.total) process.stderr.write(line + '\n');
  }
}
