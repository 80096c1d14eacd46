import { strict as assert } from 'node:assert';

/**
 * Checks that `text` is well-formed XML (elements nest and close, attributes are quoted and unique, text
 * has no raw `<` or unescaped `&`); returns the root element's name. Enough for the SVG we write.
 */
export function assertWellFormedXml(text: string): string {
  let i = 0;
  const stack: string[] = [];
  let root: string | undefined;
  const entity = /^&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/;
  const checkText = (t: string, where: number): void => {
    for (let j = 0; j < t.length; j++) {
      if (t[j] === '&') assert.ok(entity.test(t.slice(j)), `bad entity at ${where + j}`);
    }
  };
  if (text.startsWith('<?xml')) {
    i = text.indexOf('?>');
    assert.ok(i > 0, 'unterminated XML declaration');
    i += 2;
  }
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    if (stack.length === 0) assert.ok(chunk.trim() === '', `text outside the root element at ${i}`);
    checkText(chunk, i);
    if (lt < 0) break;
    if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt);
      assert.ok(end > 0, 'unterminated comment');
      i = end + 3;
      continue;
    }
    const gt = text.indexOf('>', lt);
    assert.ok(gt > 0, `unterminated tag at ${lt}`);
    const tag = text.slice(lt + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      assert.equal(stack.pop(), name, `mismatched </${name}> at ${lt}`);
    } else {
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*="[^"<]*")*)\s*$/.exec(body);
      assert.ok(m, `malformed tag <${tag.slice(0, 60)}> at ${lt}`);
      const names = [...(m[2] ?? '').matchAll(/([A-Za-z_][\w:.-]*)="([^"]*)"/g)].map((a) => {
        checkText(a[2] ?? '', lt);
        return a[1];
      });
      assert.equal(new Set(names).size, names.length, `duplicate attribute in <${m[1]}>`);
      if (stack.length === 0) {
        assert.equal(root, undefined, 'more than one root element');
        root = m[1];
      }
      if (!selfClosing) stack.push(m[1] ?? '');
    }
    i = gt + 1;
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.ok(root, 'no root element');
  return root;
}
