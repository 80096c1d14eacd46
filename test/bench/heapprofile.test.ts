import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { formatAllocSummary, summariseHeapProfiles } from '../../bench/lib/heapprofile.js';
import { ROOT } from '../../bench/lib/stack.js';

const fn = (name: string): string => name.replace(/ \S+:\d+$/, '');

interface Node { callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number; scriptId: string }; selfSize: number; children: Node[] }

function frame(functionName: string, url: string, selfSize: number, children: Node[] = []): Node {
  return { callFrame: { functionName, url, lineNumber: 9, columnNumber: 0, scriptId: '1' }, selfSize, children };
}

void test('heap profiles sum into bytes per request, by function, by area, and inclusive for our code with recursion counted once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kgents-heapprofile-'));
  try {
    const ours = pathToFileURL(join(ROOT, 'dist', 'src', 'http', 'app.js')).href;
    const pkg = pathToFileURL(join(ROOT, 'node_modules', 'fastify', 'lib', 'reply.js')).href;
    // handler (1000) -> send (500, a package) -> handler again (250): our handler's subtree is 1750 once.
    const tree = frame('(root)', '', 0, [frame('handler', ours, 1000, [frame('send', pkg, 500, [frame('handler', ours, 250)])]), frame('(V8 API)', '', 250)]);
    const files = [join(dir, 'a.heapprofile'), join(dir, 'b.heapprofile')];
    for (const f of files) writeFileSync(f, JSON.stringify({ head: tree, samples: [] }));
    const s = summariseHeapProfiles(files, 4);
    assert.equal(s.bytesPerRequest, (2 * 2000) / 4);
    assert.deepEqual(s.selfByFunction.map((r) => [fn(r.name), r.bytesPerRequest]), [['handler', 625], ['send', 250], ['(V8 API)', 125], ['(root)', 0]]);
    assert.equal(s.selfByArea.find((r) => r.name === 'pkg fastify')?.bytesPerRequest, 250);
    assert.equal(s.selfByArea.find((r) => r.name === 'src/http')?.bytesPerRequest, 625);
    assert.deepEqual(s.inclusiveOwn.map((r) => [fn(r.name), r.bytesPerRequest]), [['handler', 875]]);
    assert.match(formatAllocSummary('invoke', s, 'allocated'), /^invoke: 0\.98 KiB allocated per request \(4 requests sampled\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
