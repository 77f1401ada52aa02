/**
 * Protobuf text format (https://protobuf.dev/reference/protobuf/textformat-spec/) parsed into a
 * schema-free field tree, for Caffe `.prototxt` and TensorFlow `.pbtxt`. Each loader interprets the
 * tree with its own knowledge of the schema (which fields are messages, enums, repeated).
 *
 *   const msg = parseTextProto('name: "LeNet" layer { name: "conv1" type: "Convolution" }');
 *   msg.str('name')               // 'LeNet'
 *   msg.all('layer')[0].str('type') // 'Convolution'
 */
import { Q8Error } from '../core/errors.js';

/** A scalar: string literal (bytes as latin-1 text), number, or identifier (enum names, true/false). */
export type TextScalar = { kind: 'string'; value: string } | { kind: 'number'; value: number } | { kind: 'ident'; value: string };
export type TextValue = TextScalar | TextMessage;

export class TextMessage {
  readonly fields = new Map<string, TextValue[]>();

  add(name: string, v: TextValue): void {
    const l = this.fields.get(name);
    if (l) l.push(v);
    else this.fields.set(name, [v]);
  }

  has(name: string): boolean { return this.fields.has(name); }

  /** Every value of a field, in file order. */
  values(name: string): TextValue[] { return this.fields.get(name) ?? []; }

  /** Sub-messages of a (repeated) message field. */
  all(name: string): TextMessage[] {
    return this.values(name).map((v) => {
      if (!(v instanceof TextMessage)) throw new Q8Error(`field '${name}' should be a message`);
      return v;
    });
  }

  msg(name: string): TextMessage | undefined {
    const l = this.values(name);
    return l.length ? this.all(name)[l.length - 1] : undefined;
  }

  private scalar(name: string): TextScalar | undefined {
    const l = this.values(name);
    if (!l.length) return undefined;
    const v = l[l.length - 1]!;
    if (v instanceof TextMessage) throw new Q8Error(`field '${name}' should be a scalar, got a message`);
    return v;
  }

  str(name: string): string | undefined;
  str(name: string, dflt: string): string;
  str(name: string, dflt?: string): string | undefined {
    const v = this.scalar(name);
    if (!v) return dflt;
    return v.kind === 'number' ? String(v.value) : v.value;
  }

  num(name: string): number | undefined;
  num(name: string, dflt: number): number;
  num(name: string, dflt?: number): number | undefined {
    const v = this.scalar(name);
    if (!v) return dflt;
    return scalarNumber(v, name);
  }

  bool(name: string, dflt: boolean): boolean {
    const v = this.scalar(name);
    if (!v) return dflt;
    if (v.kind === 'number') return v.value !== 0;
    if (v.kind === 'ident' && (v.value === 'true' || v.value === 'True' || v.value === 't')) return true;
    if (v.kind === 'ident' && (v.value === 'false' || v.value === 'False' || v.value === 'f')) return false;
    throw new Q8Error(`field '${name}' should be true or false, got '${v.value}'`);
  }

  nums(name: string): number[] {
    return this.values(name).map((v) => {
      if (v instanceof TextMessage) throw new Q8Error(`field '${name}' should be numbers, got a message`);
      return scalarNumber(v, name);
    });
  }

  strs(name: string): string[] {
    return this.values(name).map((v) => {
      if (v instanceof TextMessage) throw new Q8Error(`field '${name}' should be strings, got a message`);
      return v.kind === 'number' ? String(v.value) : v.value;
    });
  }
}

function scalarNumber(v: TextScalar, name: string): number {
  if (v.kind === 'number') return v.value;
  if (v.kind === 'ident') {
    const s = v.value.toLowerCase();
    if (s === 'true') return 1;
    if (s === 'false') return 0;
    if (s === 'inf' || s === 'infinity') return Infinity;
    if (s === 'nan') return NaN;
  }
  throw new Q8Error(`field '${name}' should be a number, got '${v.value}'`);
}

/** Parse protobuf text format. `file` names the source in error messages. */
export function parseTextProto(text: string, file?: string): TextMessage {
  return new Parser(text, file).parseTop();
}

class Parser {
  private pos = 0;
  private depth = 0;

  constructor(private readonly s: string, private readonly file: string | undefined) {}

  private fail(what: string): never {
    const before = this.s.slice(0, this.pos);
    const line = before.split('\n').length;
    const col = this.pos - before.lastIndexOf('\n');
    throw new Q8Error(`text proto: ${what} at line ${line}, column ${col}`, { file: this.file });
  }

  private skipSpace(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 35 /* # */) {
        while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
      } else if (c === 32 || c === 9 || c === 10 || c === 13 || c === 11 || c === 12) {
        this.pos++;
      } else break;
    }
  }

  private peek(): string {
    this.skipSpace();
    return this.s[this.pos] ?? '';
  }

  parseTop(): TextMessage {
    const m = this.parseFields('');
    if (this.pos < this.s.length) this.fail(`unexpected '${this.s[this.pos]}'`);
    return m;
  }

  private parseFields(close: string): TextMessage {
    if (++this.depth > 200) this.fail('messages nested too deeply');
    const m = new TextMessage();
    for (;;) {
      const c = this.peek();
      if (c === '') {
        if (close) this.fail(`missing '${close}'`);
        break;
      }
      if (c === close) { this.pos++; break; }
      const name = this.fieldName();
      let c2 = this.peek();
      let colon = false;
      if (c2 === ':') { this.pos++; colon = true; c2 = this.peek(); }
      if (c2 === '{' || c2 === '<') {
        this.pos++;
        m.add(name, this.parseFields(c2 === '{' ? '}' : '>'));
      } else if (c2 === '[') {
        if (!colon) this.fail(`expected ':' after '${name}'`);
        this.pos++;
        if (this.peek() === ']') { this.pos++; }
        else {
          for (;;) {
            const c3 = this.peek();
            if (c3 === '{' || c3 === '<') { this.pos++; m.add(name, this.parseFields(c3 === '{' ? '}' : '>')); }
            else m.add(name, this.scalar());
            const sep = this.peek();
            if (sep === ',') { this.pos++; continue; }
            if (sep === ']') { this.pos++; break; }
            this.fail(`expected ',' or ']' in the list of '${name}'`);
          }
        }
      } else {
        if (!colon) this.fail(`expected ':' after '${name}'`);
        m.add(name, this.scalar());
      }
      const sep = this.peek();
      if (sep === ';' || sep === ',') this.pos++;
    }
    this.depth--;
    return m;
  }

  private fieldName(): string {
    const s = this.s;
    if (s[this.pos] === '[') {
      // Extension or Any type URL: [pkg.ext] or [type.googleapis.com/pkg.Msg]
      const end = s.indexOf(']', this.pos);
      if (end < 0) this.fail("missing ']' in an extension name");
      const n = s.slice(this.pos + 1, end).trim();
      this.pos = end + 1;
      return `[${n}]`;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(this.pos, this.pos + 256));
    if (!m) this.fail(`expected a field name, got '${s[this.pos]}'`);
    this.pos += m[0].length;
    return m[0];
  }

  private scalar(): TextScalar {
    const s = this.s;
    const c = s[this.pos];
    if (c === '"' || c === "'") {
      let out = this.stringLit();
      // Adjacent string literals concatenate.
      for (;;) {
        const n = this.peek();
        if (n === '"' || n === "'") out += this.stringLit();
        else break;
      }
      return { kind: 'string', value: out };
    }
    let neg = false;
    if (c === '-') { neg = true; this.pos++; this.skipSpace(); }
    const tok = /^[A-Za-z0-9_.+-]+/.exec(s.slice(this.pos, this.pos + 400));
    if (!tok) this.fail('expected a value');
    let t = tok[0];
    // A token like 1e-5 is fine; strip a trailing "-" that belongs to nothing? Not valid: keep strict.
    this.pos += t.length;
    if (/^[A-Za-z_]/.test(t)) {
      const low = t.toLowerCase();
      if (low === 'inf' || low === 'infinity' || low === 'inff' || low === 'infinityf') return { kind: 'number', value: neg ? -Infinity : Infinity };
      if (low === 'nan' || low === 'nanf') return { kind: 'number', value: NaN };
      if (neg) this.fail(`'-' before identifier '${t}'`);
      return { kind: 'ident', value: t };
    }
    let v: number;
    if (/^0[xX][0-9a-fA-F]+$/.test(t)) v = parseInt(t.slice(2), 16);
    else if (/^0[0-7]+$/.test(t)) v = parseInt(t.slice(1), 8);
    else {
      if (/[fF]$/.test(t) && !/^0[xX]/.test(t)) t = t.slice(0, -1);
      if (!/^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) this.fail(`bad number '${tok[0]}'`);
      v = Number(t);
    }
    return { kind: 'number', value: neg ? -v : v };
  }

  private stringLit(): string {
    const s = this.s;
    const q = s[this.pos]!;
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= s.length) this.fail('unterminated string');
      const c = s[this.pos++]!;
      if (c === q) return out;
      if (c === '\n') this.fail('newline in a string');
      if (c !== '\\') { out += c; continue; }
      const e = s[this.pos++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\x07'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\\': case "'": case '"': case '?': out += e; break;
        case 'x': case 'X': {
          const m = /^[0-9a-fA-F]{1,2}/.exec(s.slice(this.pos, this.pos + 2));
          if (!m) this.fail('bad \\x escape');
          out += String.fromCharCode(parseInt(m[0], 16));
          this.pos += m[0].length;
          break;
        }
        default: {
          const m = /^[0-7]{1,3}/.exec(s.slice(this.pos - 1, this.pos + 2));
          if (!m) this.fail(`bad escape '\\${e ?? ''}'`);
          out += String.fromCharCode(parseInt(m[0], 8) & 255);
          this.pos += m[0].length - 1;
        }
      }
    }
  }
}

/** Latin-1 string (as string literals decode) to bytes: the bytes a `bytes` field holds. */
export function latin1Bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i) & 255;
  return b;
}
