export interface OrtQdqOptions { x?: number }
export function writeOrtQdq(): void {}
