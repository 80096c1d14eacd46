import { crc32c } from './crc32c.js';

/*
 * On-disk format (all integers little-endian).
 *
 * Segment file `<20-digit base sequence>.seg`, starting with a 16-byte header:
 *   0  4  magic "KGFQ"
 *   4  1  segment format version (1)
 *   5  3  reserved, zero
 *   8  8  base sequence (sequence number of the segment's first record; equals the file name)
 *
 * followed by records, each a 32-byte header and the payload:
 *   0  4  record marker FF 4B 52 FE (bytes that never occur in UTF-8, so a resync after
 *         corruption does not stop inside JSON payloads)
 *   4  1  record format version (1)
 *   5  1  flags, zero
 *   6  2  reserved, zero
 *   8  4  payload length
 *  12  8  sequence number
 *  20  8  timestamp, ms since the epoch
 *  28  4  CRC-32C of bytes 4..28 followed by the payload
 *  32  n  payload
 */

export const SEGMENT_MAGIC = Buffer.from('KGFQ', 'latin1');
export const SEGMENT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 16;
export const RECORD_MARKER = Buffer.from([0xff, 0x4b, 0x52, 0xfe]);
export const RECORD_VERSION = 1;
export const RECORD_HEADER_BYTES = 32;
const CRC_OFFSET = 28;
/** Hard cap on a payload length field; anything larger is corruption whatever the options say. */
export const MAX_PAYLOAD_BYTES = 256 * 1024 * 1024;

const SEGMENT_SUFFIX = '.seg';
const SEGMENT_NAME = /^(\d{20})\.seg$/;
const TWO_32 = 2 ** 32;

export function segmentFileName(id: number): string {
  return `${String(id).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

/** The segment id of a segment file name, or undefined for any other file. */
export function parseSegmentFileName(name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name);
  if (!match) return undefined;
  const id = Number(match[1]);
  return Number.isSafeInteger(id) ? id : undefined;
}

export function recordBytes(payloadLength: number): number {
  return RECORD_HEADER_BYTES + payloadLength;
}

function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32LE(value % TWO_32, offset);
  buf.writeUInt32LE(Math.floor(value / TWO_32), offset + 4);
}

/** undefined when the value is not a safe integer (only corruption produces that). */
function readU64(buf: Buffer, offset: number): number | undefined {
  const value = buf.readUInt32LE(offset + 4) * TWO_32 + buf.readUInt32LE(offset);
  return Number.isSafeInteger(value) ? value : undefined;
}

export function encodeSegmentHeader(baseSequence: number): Buffer {
  const buf = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(buf, 0);
  buf[4] = SEGMENT_VERSION;
  writeU64(buf, baseSequence, 8);
  return buf;
}

/** undefined when the header is valid for `id`, else what is wrong with it. */
export function checkSegmentHeader(buf: Buffer, id: number): string | undefined {
  if (buf.length < SEGMENT_HEADER_BYTES) return `short header (${buf.length} bytes)`;
  if (!buf.subarray(0, 4).equals(SEGMENT_MAGIC)) return 'bad magic';
  if (buf[4] !== SEGMENT_VERSION) return `unsupported segment version ${buf[4]}`;
  const base = readU64(buf, 8);
  if (base !== id) return `base sequence ${base} does not match file name ${id}`;
  return undefined;
}

/** Encodes one record into `out` at `offset`; returns the offset just after it. */
export function encodeRecord(out: Buffer, offset: number, payload: Uint8Array, sequence: number, timestamp: number): number {
  RECORD_MARKER.copy(out, offset);
  out[offset + 4] = RECORD_VERSION;
  out[offset + 5] = 0;
  out.writeUInt16LE(0, offset + 6);
  out.writeUInt32LE(payload.length, offset + 8);
  writeU64(out, sequence, offset + 12);
  writeU64(out, timestamp, offset + 20);
  out.set(payload, offset + RECORD_HEADER_BYTES);
  const end = offset + RECORD_HEADER_BYTES + payload.length;
  const crc = crc32c(out, offset + RECORD_HEADER_BYTES, end, crc32c(out, offset + 4, offset + CRC_OFFSET));
  out.writeUInt32LE(crc, offset + CRC_OFFSET);
  return end;
}

export interface RecordHeader {
  readonly payloadLength: number;
  readonly sequence: number;
  readonly timestamp: number;
}

/**
 * Parses the header at `offset` (which must have RECORD_HEADER_BYTES available). Returns the
 * header, or a reason string when it cannot be the start of a record.
 */
export function decodeRecordHeader(buf: Buffer, offset: number): RecordHeader | string {
  if (buf[offset] !== 0xff || buf[offset + 1] !== 0x4b || buf[offset + 2] !== 0x52 || buf[offset + 3] !== 0xfe) return 'bad record marker';
  if (buf[offset + 4] !== RECORD_VERSION) return `unsupported record version ${buf[offset + 4]}`;
  if (buf[offset + 5] !== 0 || buf.readUInt16LE(offset + 6) !== 0) return 'nonzero reserved bits';
  const payloadLength = buf.readUInt32LE(offset + 8);
  if (payloadLength === 0 || payloadLength > MAX_PAYLOAD_BYTES) return `implausible payload length ${payloadLength}`;
  const sequence = readU64(buf, offset + 12);
  const timestamp = readU64(buf, offset + 20);
  if (sequence === undefined || timestamp === undefined) return 'implausible sequence or timestamp';
  return { payloadLength, sequence, timestamp };
}

/** Whether the record at `offset` (header and payload present in `buf`) has a valid checksum. */
export function recordChecksumValid(buf: Buffer, offset: number, payloadLength: number): boolean {
  const end = offset + RECORD_HEADER_BYTES + payloadLength;
  const crc = crc32c(buf, offset + RECORD_HEADER_BYTES, end, crc32c(buf, offset + 4, offset + CRC_OFFSET));
  return crc === buf.readUInt32LE(offset + CRC_OFFSET);
}
