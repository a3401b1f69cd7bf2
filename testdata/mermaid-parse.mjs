// Parses Mermaid diagrams with Mermaid's own parser, for TestMermaidParses.
// Reads a JSON array of diagrams on stdin; prints one line per diagram,
// "ok" or the parser's error, and exits 1 if any failed. The mermaid
// package is found in the directory named by PEERDISC_MERMAID, where
// `npm install mermaid@11 jsdom@26` ran (.ci/run does that).
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.env.PEERDISC_MERMAID + '/');
// Flowchart labels are sanitized with DOMPurify, which needs a DOM: jsdom's.
const { JSDOM } = require('jsdom');
globalThis.window = new JSDOM('').window;
globalThis.document = window.document;
const { default: mermaid } = await import(pathToFileURL(require.resolve('mermaid')));
let input = '';
for await (const chunk of process.stdin) input += chunk;
let failed = false;
for (const diagram of JSON.parse(input)) {
  try {
    await mermaid.parse(diagram);
    console.log('ok');
  } catch (e) {
    failed = true;
    console.log(JSON.stringify(String(e.message)));
  }
}
process.exit(failed ? 1 : 0);
