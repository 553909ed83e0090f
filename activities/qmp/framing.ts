// QMP framing: each message is one JSON object terminated by a newline (QEMU writes "\r\n").
// Chunks from the socket may hold partial lines or several lines; this splitter reassembles them.
// It works on bytes and splits on 0x0A, which never occurs inside a multi-byte UTF-8 sequence, so a
// character split across two chunks is decoded correctly.
import { QmpProtocolError } from './errors';

const NEWLINE = 0x0a;

/** Default upper bound for one QMP message. QEMU's own python client uses 10 MB (like libvirt). */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

export class LineSplitter {
  readonly #maxLineBytes: number;
  #parts: Buffer[] = [];
  #partBytes = 0;

  constructor(maxLineBytes: number = DEFAULT_MAX_LINE_BYTES) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes <= 0) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
    }
    this.#maxLineBytes = maxLineBytes;
  }

  /** Bytes received so far that do not yet form a complete line. */
  get bufferedBytes(): number {
    return this.#partBytes;
  }

  /**
   * Feed one chunk; returns the complete, non-blank lines it finished (without line terminators).
   * Throws QmpProtocolError if a line exceeds the limit; the splitter is unusable afterwards.
   */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      this.#checkSize(this.#partBytes + piece.length);
      const line = this.#partBytes === 0 ? piece : Buffer.concat([...this.#parts, piece]);
      this.#parts = [];
      this.#partBytes = 0;
      const text = line.toString('utf8').trim();
      if (text.length > 0) lines.push(text);
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.#checkSize(this.#partBytes + rest.length);
      // Copy: the socket may reuse its buffer.
      this.#parts.push(Buffer.from(rest));
      this.#partBytes += rest.length;
    }
    return lines;
  }

  #checkSize(bytes: number): void {
    if (bytes > this.#maxLineBytes) {
      this.#parts = [];
      this.#partBytes = 0;
      throw new QmpProtocolError(`message longer than ${this.#maxLineBytes} bytes without a newline`);
    }
  }
}

/** Serialize one outgoing message as a QMP line. */
export function encodeMessage(message: Record<string, unknown>): string {
  return `${JSON.stringify(message)}\n`;
}
