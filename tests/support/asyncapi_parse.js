// Parse an AsyncAPI document with @asyncapi/parser and print what the test compares:
// diagnostics, and per operation its action, channel and messages' payloads; close codes.
const { Parser, fromFile } = require('@asyncapi/parser');

(async () => {
  const { document, diagnostics } = await fromFile(new Parser(), process.argv[2]).parse();
  const out = {
    errors: diagnostics.filter((d) => d.severity === 0).map((d) => `${d.message} at ${d.path.join('.')}`),
    operations: [],
    closeCodes: null,
  };
  if (document) {
    for (const op of document.operations()) {
      out.operations.push({
        id: op.id(),
        action: op.action(),
        channels: op.channels().all().map((c) => c.address()),
        messages: op.messages().all().map((m) => m.payload().json()),
      });
    }
    const live = document.channels().get('live');
    const ext = live && live.extensions().get('x-close-codes');
    out.closeCodes = ext ? ext.value() : null;
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
