// What tests/test_client_package.py compares: the browser client package's
// declarations (.d.ts, read with the TypeScript compiler API) and the real
// modules (imported by package name, through package.json `exports`, in node).
// Usage: node client_package.cjs <project dir: node_modules/<package>, load.mjs> <package name>
const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const ts = require('typescript');

const kindOfSymbol = (flags) => (flags & ts.SymbolFlags.Class ? 'class'
  : flags & ts.SymbolFlags.Function ? 'function' : 'value');
const kindOfValue = (value) => (typeof value !== 'function' ? typeof value
  : /^class\b/.test(Function.prototype.toString.call(value)) ? 'class' : 'function');

(async () => {
  const project = path.resolve(process.argv[2]);
  const pkgDir = path.join(project, 'node_modules', ...process.argv[3].split('/'));
  const manifest = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  const { load } = await import(pathToFileURL(path.join(project, 'load.mjs')).href);
  const entries = Object.entries(manifest.exports).filter(([, target]) => typeof target === 'object');
  const files = entries.map(([, target]) => path.resolve(pkgDir, target.types));
  const program = ts.createProgram(files, { strict: true, noEmit: true, types: [], target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'], module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext });
  const checker = program.getTypeChecker();
  const out = {
    diagnostics: ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    exports: {}, interfaces: {}, aliases: {},
  };
  let main = null;
  for (const [subpath, target] of entries) {
    const specifier = subpath === '.' ? manifest.name : manifest.name + subpath.slice(1);
    const runtime = await load(specifier);
    const source = program.getSourceFile(path.resolve(pkgDir, target.types));
    const symbols = checker.getExportsOfModule(checker.getSymbolAtLocation(source))
      .map((s) => [s.name, s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s]);
    const declared = Object.fromEntries(symbols.filter(([, s]) => s.flags & ts.SymbolFlags.Value)
      .map(([name, s]) => [name, kindOfSymbol(s.flags)]));
    const actual = Object.fromEntries(Object.entries(runtime).map(([name, v]) => [name, kindOfValue(v)]));
    out.exports[subpath] = { specifier, declared, actual };
    if (subpath === '.') main = { runtime, symbols: new Map(symbols) };
  }

  // The declared shapes: each exported interface's properties, each alias's literals.
  for (const [name, symbol] of main.symbols) {
    if (symbol.flags & ts.SymbolFlags.Interface) {
      out.interfaces[name] = Object.fromEntries(checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol)).map((p) => {
        const decl = p.valueDeclaration;
        return [p.name, { optional: Boolean(decl.questionToken), type: decl.type.getText(),
          readonly: Boolean(ts.getCombinedModifierFlags(decl) & ts.ModifierFlags.Readonly) }];
      }));
    } else if (symbol.flags & ts.SymbolFlags.TypeAlias) {
      const type = checker.getDeclaredTypeOfSymbol(symbol);
      const parts = type.isUnion() ? type.types : [type];
      out.aliases[name] = parts.every((t) => t.isStringLiteral()) ? parts.map((t) => t.value) : checker.typeToString(type);
    }
  }

  // SessionsClient: its declared members against a real instance's public ones.
  const { SessionsClient } = main.runtime;
  const client = new SessionsClient({ url: 'http://127.0.0.1/' });
  const declaredClass = checker.getDeclaredTypeOfSymbol(main.symbols.get('SessionsClient'));
  out.client = {
    declared: checker.getPropertiesOfType(declaredClass).map((p) => p.name).sort(),
    actual: [...Object.keys(client), ...Object.getOwnPropertyNames(SessionsClient.prototype)]
      .filter((n) => n !== 'constructor' && !n.startsWith('_')).sort(),
    options: Object.keys(client.options).sort(),
    stats: Object.keys(client.stats).sort(),
  };
  console.log(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
