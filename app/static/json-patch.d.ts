// Type declarations for json-patch.js: RFC 6902 JSON Patch, as sessions-client.js applies it.
// Checked against the module by tests/static/test_client_package.py (every export, both ways).

/** An invalid operation: a bad pointer, a missing path, a failed `test`, an unknown `op`. */
export class PatchError extends Error {}

/** One RFC 6902 operation. */
export type Operation =
  | { readonly op: 'add' | 'replace' | 'test'; readonly path: string; readonly value: unknown }
  | { readonly op: 'remove'; readonly path: string }
  | { readonly op: 'move' | 'copy'; readonly from: string; readonly path: string };

/** The reference tokens of a JSON Pointer (`''` is the whole document). Throws PatchError. */
export function parsePointer(path: string): string[];

/** Structural equality of two JSON values. */
export function deepEqual(a: unknown, b: unknown): boolean;

/** One operation applied to `doc`, which is never mutated; returns the new document. Throws PatchError. */
export function applyOperation(doc: unknown, op: Operation): unknown;

/** A JSON Patch applied to `doc`, all or nothing (`doc` is never mutated); returns the new document. */
export function applyPatch(doc: unknown, ops: readonly Operation[]): unknown;
