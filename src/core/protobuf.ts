/**
 * A minimal protobuf wire-format reader and writer (https://protobuf.dev/programming-guides/encoding/).
 * Loaders write their schema as the subset of field numbers they need and walk messages with
 * `fields()`. Length-delimited payloads are views into the source bytes (no copy), so a multi-GiB
 * weight blob is never duplicated while parsing. Every read is bounds-checked: a truncated or corrupt
 * file becomes a ProtobufError with the byte offset, never an out-of-range read or a hang.
 */
export class ProtobufError extends Error {
  override readonly name = 'ProtobufError';
}

export const enum Wire { Varint = 0, I64 = 1, Len = 2, SGroup = 3, EGroup = 4, I32 = 5 }

const td = new TextDecoder('utf-8');
const te = new TextEncoder();

export class Reader {
  pos: number;
  readonly end: number;

  constructor(readonly buf: Uint8Array, start = 0, end = buf.length) {
    this.pos = start;
    this.end = end;
  }

  get done(): boolean { return this.pos >= this.end; }

  private fail(what: string): never {
    throw new ProtobufError(`${what} at byte ${this.pos}`);
  }

  /**
   * Varint as a JS number: exact up to 2^53; longer values (e.g. negative int32/int64, which protobuf
   * sign-extends to 10 bytes) go through BigInt and come back as signed 64-bit.
   */
  varint(): number {
    const start = this.pos;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    this.pos = start;
    return Number(this.varintBig());
  }

  /** Varint as a signed 64-bit bigint (int64 fields that must stay exact). */
  varintBig(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail('truncated varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asIntN(64, result);
      shift += 7n;
    }
    return this.fail('malformed varint');
  }

  /** Field key: [fieldNumber, wireType]. */
  key(): [number, number] {
    const k = this.varint();
    const field = Math.floor(k / 8);
    if (field < 1) this.fail(`invalid field number ${field}`);
    return [field, k & 7];
  }

  bytes(): Uint8Array {
    const n = this.varint();
    if (n < 0 || this.pos + n > this.end) this.fail(`length ${n} runs past the end of the message`);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  string(): string { return td.decode(this.bytes()); }

  /** A sub-reader over a length-delimited field. */
  message(): Reader {
    const n = this.varint();
    if (n < 0 || this.pos + n > this.end) this.fail(`length ${n} runs past the end of the message`);
    const r = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return r;
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) this.fail('truncated fixed32');
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
  }

  float(): number {
    if (this.pos + 4 > this.end) this.fail('truncated float');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    if (this.pos + 8 > this.end) this.fail('truncated double');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  fixed64Big(): bigint {
    if (this.pos + 8 > this.end) this.fail('truncated fixed64');
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 8).getBigUint64(0, true);
    this.pos += 8;
    return v;
  }

  skip(wire: number): void {
    switch (wire) {
      case Wire.Varint: this.varint(); return;
      case Wire.I64: if (this.pos + 8 > this.end) this.fail('truncated fixed64'); this.pos += 8; return;
      case Wire.Len: this.bytes(); return;
      case Wire.I32: if (this.pos + 4 > this.end) this.fail('truncated fixed32'); this.pos += 4; return;
      case Wire.SGroup: {
        // Skip until the matching end-group; nesting depth bounded by the message length.
        for (;;) {
          if (this.done) this.fail('unterminated group');
          const [, w] = this.key();
          if (w === Wire.EGroup) return;
          this.skip(w);
        }
      }
      default: this.fail(`invalid wire type ${wire}`);
    }
  }

  /**
   * Repeated numeric field that may be packed or not: call with the wire type seen; `one` reads a
   * single element from a reader. Appends to `out`.
   */
  repeated<T>(wire: number, elemWire: number, one: (r: Reader) => T, out: T[]): void {
    if (wire === Wire.Len && elemWire !== Wire.Len) {
      const sub = this.message();
      while (!sub.done) out.push(one(sub));
    } else if (wire === elemWire) {
      out.push(one(this));
    } else {
      this.fail(`wire type ${wire} does not fit a repeated field of wire type ${elemWire}`);
    }
  }
}

// ----------------------------------------------------------------------------------------------
// Writer: builds a message into growable chunks. Length-delimited sub-messages are written by
// serialising them first (simple and fast enough: ONNX nesting is shallow, weights go as raw bytes).

export class Writer {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1024);
  private n = 0;
  private total = 0;

  private ensure(k: number): void {
    if (this.n + k <= this.cur.length) return;
    this.flush();
    this.cur = new Uint8Array(Math.max(1024, k, this.cur.length * 2 > 1 << 20 ? 1 << 20 : this.cur.length * 2));
  }

  private flush(): void {
    if (this.n) this.chunks.push(this.cur.subarray(0, this.n));
    this.total += this.n;
    this.cur = new Uint8Array(this.cur.length);
    this.n = 0;
  }

  private rawVarint(v: number): void {
    this.ensure(10);
    if (v < 0) {
      // Negative int64: two's complement in 10 bytes.
      let big = BigInt.asUintN(64, BigInt(Math.trunc(v)));
      for (let i = 0; i < 10; i++) {
        const b = Number(big & 0x7fn);
        big >>= 7n;
        this.cur[this.n++] = big ? b | 0x80 : b;
        if (!big) return;
      }
      return;
    }
    while (v >= 0x80) {
      this.cur[this.n++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.cur[this.n++] = v;
  }

  private tag(field: number, wire: number): void { this.rawVarint(field * 8 + wire); }

  varint(field: number, v: number): this { this.tag(field, Wire.Varint); this.rawVarint(v); return this; }

  varintBig(field: number, v: bigint): this {
    this.tag(field, Wire.Varint);
    let u = BigInt.asUintN(64, v);
    this.ensure(10);
    do {
      const b = Number(u & 0x7fn);
      u >>= 7n;
      this.cur[this.n++] = u ? b | 0x80 : b;
    } while (u);
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, Wire.I32);
    this.ensure(4);
    new DataView(this.cur.buffer, this.cur.byteOffset + this.n, 4).setFloat32(0, v, true);
    this.n += 4;
    return this;
  }

  double(field: number, v: number): this {
    this.tag(field, Wire.I64);
    this.ensure(8);
    new DataView(this.cur.buffer, this.cur.byteOffset + this.n, 8).setFloat64(0, v, true);
    this.n += 8;
    return this;
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, Wire.Len);
    this.rawVarint(b.length);
    if (b.length > 4096) {
      this.flush();
      this.chunks.push(b);
      this.total += b.length;
    } else {
      this.ensure(b.length);
      this.cur.set(b, this.n);
      this.n += b.length;
    }
    return this;
  }

  string(field: number, s: string): this { return this.bytes(field, te.encode(s)); }

  /** Embed a sub-message without concatenating its chunks (large weights are copied only once, at the end). */
  message(field: number, w: Writer): this {
    const parts = w.parts();
    this.tag(field, Wire.Len);
    this.rawVarint(w.length);
    this.flush();
    for (const p of parts) { this.chunks.push(p); this.total += p.length; }
    return this;
  }

  packedVarints(field: number, vs: ArrayLike<number>): this {
    if (!vs.length) return this;
    const w = new Writer();
    for (let i = 0; i < vs.length; i++) w.rawVarint(vs[i]!);
    return this.bytes(field, w.finish());
  }

  packedFloats(field: number, vs: ArrayLike<number>): this {
    if (!vs.length) return this;
    const f = Float32Array.from(vs);
    return this.bytes(field, new Uint8Array(f.buffer));
  }

  get length(): number { return this.total + this.n; }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.total);
    let off = 0;
    for (const c of this.chunks) { out.set(c, off); off += c.length; }
    this.chunks = [out];
    return out;
  }

  /** The encoded chunks, for streaming to a file without one big concatenation. */
  parts(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }
}
