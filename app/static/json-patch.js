// json-patch.js: RFC 6902 JSON Patch, as sessions-client.js applies it.
//
// Documents are never mutated: each operation copies only the containers on
// its path, so a failed patch leaves the original intact (patches are atomic)
// and every untouched subtree stays identical (`===`), which is how the client
// tells which fields of a session changed.

export class PatchError extends Error {}

const hasOwn = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);
const isContainer = (v) => v !== null && typeof v === 'object';

function put(obj, key, value) {
  // defineProperty, not `obj[key] =`: a key such as "__proto__" stays plain data.
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

export function parsePointer(path) {
  if (path === '') return [];
  if (typeof path !== 'string' || path[0] !== '/' || /~[^01]|~$/.test(path)) throw new PatchError(`not a JSON Pointer: ${path}`);
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function arrayIndex(arr, token, forInsert) {
  if (forInsert && token === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(`not an array index: ${token}`);
  const i = Number(token);
  if (i > arr.length || (!forInsert && i === arr.length)) throw new PatchError(`index ${token} out of range`);
  return i;
}

function lookup(doc, tokens) {
  let node = doc;
  for (const token of tokens) {
    if (Array.isArray(node)) node = node[arrayIndex(node, token, false)];
    else if (isContainer(node) && hasOwn(node, token)) node = node[token];
    else throw new PatchError(`path not found: /${tokens.join('/')}`);
  }
  return node;
}

// A copy of `node` where `change(copyOfParent, lastToken)` has edited the parent of `tokens`.
function edit(node, tokens, depth, change) {
  if (!isContainer(node)) throw new PatchError(`path not found: /${tokens.join('/')}`);
  const copy = Array.isArray(node) ? node.slice() : { ...node };
  const token = tokens[depth];
  if (depth === tokens.length - 1) {
    change(copy, token);
    return copy;
  }
  if (Array.isArray(node)) {
    const i = arrayIndex(node, token, false);
    copy[i] = edit(node[i], tokens, depth + 1, change);
  } else {
    if (!hasOwn(node, token)) throw new PatchError(`path not found: /${tokens.join('/')}`);
    put(copy, token, edit(node[token], tokens, depth + 1, change));
  }
  return copy;
}

function add(doc, tokens, value) {
  if (tokens.length === 0) return value;
  return edit(doc, tokens, 0, (parent, token) => {
    if (Array.isArray(parent)) parent.splice(arrayIndex(parent, token, true), 0, value);
    else put(parent, token, value);
  });
}

function remove(doc, tokens) {
  if (tokens.length === 0) throw new PatchError('cannot remove the whole document');
  return edit(doc, tokens, 0, (parent, token) => {
    if (Array.isArray(parent)) parent.splice(arrayIndex(parent, token, false), 1);
    else if (hasOwn(parent, token)) delete parent[token];
    else throw new PatchError(`path not found: /${tokens.join('/')}`);
  });
}

function replace(doc, tokens, value) {
  if (tokens.length === 0) return value;
  lookup(doc, tokens); // must exist
  return edit(doc, tokens, 0, (parent, token) => {
    if (Array.isArray(parent)) parent[arrayIndex(parent, token, false)] = value;
    else put(parent, token, value);
  });
}

export function deepEqual(a, b) {
  if (a === b) return true;
  if (!isContainer(a) || !isContainer(b) || Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => hasOwn(b, k) && deepEqual(a[k], b[k]));
}

// RFC 6902 4.1, 4.3, 4.6: add, replace and test must have a `value` member (`null` is a value).
function valueOf(op) {
  if (!isContainer(op) || !hasOwn(op, 'value')) throw new PatchError(`${op.op} without a value at ${op.path}`);
  return op.value;
}

/** One operation applied to `doc`; returns the new document. Throws PatchError. */
export function applyOperation(doc, op) {
  const tokens = parsePointer(op.path);
  switch (op.op) {
    case 'add': return add(doc, tokens, valueOf(op));
    case 'remove': return remove(doc, tokens);
    case 'replace': return replace(doc, tokens, valueOf(op));
    case 'copy': return add(doc, tokens, lookup(doc, parsePointer(op.from)));
    case 'move': {
      const from = parsePointer(op.from);
      const value = lookup(doc, from); // must exist, even to move it onto itself
      if (op.path === op.from) return doc;
      if (op.path.startsWith(`${op.from}/`)) throw new PatchError('cannot move a value into itself');
      return add(remove(doc, from), tokens, value);
    }
    case 'test':
      if (!deepEqual(lookup(doc, tokens), valueOf(op))) throw new PatchError(`test failed at ${op.path}`);
      return doc;
    default: throw new PatchError(`unknown op ${op.op}`);
  }
}

/** A JSON Patch applied to `doc`, all or nothing; returns the new document. */
export function applyPatch(doc, ops) {
  return ops.reduce(applyOperation, doc);
}
