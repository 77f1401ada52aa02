/**
 * Every error q8 raises on bad input is a Q8Error that says where: the file, the node (name and op
 * type) and what was expected. The CLI prints `message` and exits non-zero; it never shows a stack.
 */
export interface ErrorContext {
  file?: string;
  node?: string;
  opType?: string;
}

export class Q8Error extends Error {
  override readonly name = 'Q8Error';
  readonly file: string | undefined;
  readonly node: string | undefined;
  readonly opType: string | undefined;
  /** The message without the location prefix. */
  readonly detail: string;

  constructor(detail: string, ctx: ErrorContext = {}, options?: { cause?: unknown }) {
    super(formatLocation(ctx) + detail, options);
    this.detail = detail;
    this.file = ctx.file;
    this.node = ctx.node;
    this.opType = ctx.opType;
  }

  /** The same error with more location filled in (existing fields win). */
  withContext(ctx: ErrorContext): Q8Error {
    const merged = { file: this.file ?? ctx.file, node: this.node ?? ctx.node, opType: this.opType ?? ctx.opType };
    const e = new Q8Error(this.detail, merged, { cause: this.cause });
    return e;
  }
}

function formatLocation(ctx: ErrorContext): string {
  const parts: string[] = [];
  if (ctx.file) parts.push(ctx.file);
  if (ctx.node !== undefined || ctx.opType) parts.push(`node '${ctx.node ?? '?'}'${ctx.opType ? ` (${ctx.opType})` : ''}`);
  return parts.length ? parts.join(': ') + ': ' : '';
}

/** Throw a Q8Error unless `cond` holds. */
export function check(cond: unknown, detail: string | (() => string), ctx?: ErrorContext): asserts cond {
  if (!cond) throw new Q8Error(typeof detail === 'function' ? detail() : detail, ctx);
}

/** Wrap any error thrown by `fn` so it names the context (file, node). Non-Q8 errors become Q8Errors. */
export function withErrorContext<T>(ctx: ErrorContext, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toQ8Error(e, ctx);
  }
}

export function toQ8Error(e: unknown, ctx: ErrorContext): Q8Error {
  if (e instanceof Q8Error) return e.withContext(ctx);
  if (e instanceof RangeError) return new Q8Error(`out of range: ${e.message}`, ctx, { cause: e });
  const msg = e instanceof Error ? e.message : String(e);
  return new Q8Error(msg, ctx, { cause: e });
}
