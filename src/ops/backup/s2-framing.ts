import { createReadStream } from 'node:fs';

/**
 * Walks the chunk framing of an s2 (snappy-framed) stream, the compression nats-server puts
 * around a snapshot's tar: a stream identifier chunk, then chunks of `type(1) length(3, little
 * endian) body`. It cannot check the content (that needs decompressing), but it finds what the
 * whole-file checksum cannot: a snapshot that the server cut short (it ends a failed snapshot with
 * the same empty message as a complete one), and a file that is not a snapshot at all.
 * Returns the problem, or undefined when the framing is whole.
 */
export async function checkS2Framing(path: string): Promise<string | undefined> {
  let pending = Buffer.alloc(0);
  let offset = 0;
  let first = true;
  let dataChunks = 0;
  // bytes of the current chunk's body still to skip
  let skip = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    pending = Buffer.alloc(0);
    while (buf.length > 0) {
      if (skip > 0) {
        const n = Math.min(skip, buf.length);
        skip -= n;
        offset += n;
        buf = buf.subarray(n);
        continue;
      }
      if (buf.length < 4) {
        pending = Buffer.from(buf);
        break;
      }
      const type = buf[0] ?? 0;
      const len = (buf[1] ?? 0) | ((buf[2] ?? 0) << 8) | ((buf[3] ?? 0) << 16);
      if (first) {
        if (type !== 0xff || len !== 6) return 'not an s2 stream (no stream identifier at the start)';
        first = false;
      } else if (type === 0x00 || type === 0x01) {
        if (len < 4) return `chunk at byte ${offset} is shorter than its checksum`;
        dataChunks++;
      } else if (type >= 0x02 && type <= 0x7f) {
        return `chunk at byte ${offset} has the reserved type 0x${type.toString(16)}`;
      }
      offset += 4;
      buf = buf.subarray(4);
      skip = len;
    }
  }
  if (first) return 'empty file (no stream identifier)';
  if (skip > 0 || pending.length > 0) return `the stream is cut short at byte ${offset + pending.length} (a chunk is incomplete)`;
  if (dataChunks === 0) return 'the stream holds no data chunk';
  return undefined;
}
