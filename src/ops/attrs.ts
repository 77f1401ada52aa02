/**
 * Typed, defaulted access to a node's attributes. Kernels read attributes only through this, so a
 * wrongly typed attribute is a clear error naming the attribute rather than a NaN downstream.
 */
import { Q8Error } from '../core/errors.js';
import type { AttrValue, Graph } from '../graph/ir.js';
import type { Tensor } from '../tensor/tensor.js';

export class Attrs {
  constructor(private readonly values: Readonly<Record<string, AttrValue>>) {}

  has(name: string): boolean { return name in this.values; }
  raw(name: string): AttrValue | undefined { return this.values[name]; }

  int(name: string, dflt: number): number;
  int(name: string): number | undefined;
  int(name: string, dflt?: number): number | undefined {
    const a = this.values[name];
    if (!a) return dflt;
    if (a.type === 'int' || a.type === 'float') return a.value;
    throw this.bad(name, 'an int', a);
  }

  float(name: string, dflt: number): number;
  float(name: string): number | undefined;
  float(name: string, dflt?: number): number | undefined {
    const a = this.values[name];
    if (!a) return dflt;
    if (a.type === 'float' || a.type === 'int') return a.value;
    throw this.bad(name, 'a float', a);
  }

  string(name: string, dflt: string): string;
  string(name: string): string | undefined;
  string(name: string, dflt?: string): string | undefined {
    const a = this.values[name];
    if (!a) return dflt;
    if (a.type === 'string') return a.value;
    throw this.bad(name, 'a string', a);
  }

  ints(name: string, dflt: number[]): number[];
  ints(name: string): number[] | undefined;
  ints(name: string, dflt?: number[]): number[] | undefined {
    const a = this.values[name];
    if (!a) return dflt;
    if (a.type === 'ints' || a.type === 'floats') return a.value;
    if (a.type === 'int') return [a.value];
    throw this.bad(name, 'a list of ints', a);
  }

  floats(name: string, dflt: number[]): number[];
  floats(name: string): number[] | undefined;
  floats(name: string, dflt?: number[]): number[] | undefined {
    const a = this.values[name];
    if (!a) return dflt;
    if (a.type === 'floats' || a.type === 'ints') return a.value;
    if (a.type === 'float') return [a.value];
    throw this.bad(name, 'a list of floats', a);
  }

  strings(name: string, dflt: string[]): string[];
  strings(name: string): string[] | undefined;
  strings(name: string, dflt?: string[]): string[] | undefined {
    const a = this.values[name];
    if (!a) return dflt;
    if (a.type === 'strings') return a.value;
    throw this.bad(name, 'a list of strings', a);
  }

  tensor(name: string): Tensor | undefined {
    const a = this.values[name];
    if (!a) return undefined;
    if (a.type === 'tensor') return a.value;
    throw this.bad(name, 'a tensor', a);
  }

  graph(name: string): Graph | undefined {
    const a = this.values[name];
    if (!a) return undefined;
    if (a.type === 'graph') return a.value;
    throw this.bad(name, 'a graph', a);
  }

  private bad(name: string, want: string, got: AttrValue): Q8Error {
    return new Q8Error(`attribute '${name}' should be ${want}, got ${got.type}`);
  }
}
