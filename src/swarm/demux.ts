/**
 * Docker's stdout/stderr multiplexing (container attach/exec without a TTY, container and service logs):
 * every frame is an 8-byte header — stream byte (0 stdin, 1 stdout, 2 stderr), three zero bytes,
 * payload length as uint32 big-endian — followed by the payload.
 * A TTY stream carries raw bytes without headers; it is passed through as stdout.
 */

export type StreamName = 'stdout' | 'stderr';

const HEADER = 8;

/** Whether `buf` (possibly shorter than a header) can be the start of a frame header. */
function headerPrefixOk(buf: Buffer): boolean {
  const b0 = buf[0];
  if (b0 === undefined) return true;
  if (b0 > 2) return false;
  for (let i = 1; i < Math.min(4, buf.length); i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Incremental demultiplexer: feed chunks as they arrive (frames may be split anywhere);
 * payload is handed out as it comes, so a big frame is never buffered whole.
 */
export class Demuxer {
  private pending: Buffer = Buffer.alloc(0);
  /** bytes of the current frame's payload still to come */
  private remaining = 0;
  private current: StreamName = 'stdout';
  /** not multiplexed (TTY) or misaligned: everything from here on is stdout */
  private raw = false;
  private sawFrame = false;

  constructor(private readonly onData: (stream: StreamName, chunk: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length > 0) {
      if (this.raw) return this.emitPending('stdout');
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, this.pending.length);
        this.emit(this.current, this.pending.subarray(0, n));
        this.pending = this.pending.subarray(n);
        this.remaining -= n;
        continue;
      }
      if (!headerPrefixOk(this.pending)) {
        this.raw = true;
        continue;
      }
      if (this.pending.length < HEADER) return; // wait for the rest of the header
      this.current = this.pending[0] === 2 ? 'stderr' : 'stdout';
      this.remaining = this.pending.readUInt32BE(4);
      this.pending = this.pending.subarray(HEADER);
      this.sawFrame = true;
    }
  }

  /** End of input: a short leftover is raw output (e.g. a TTY stream shorter than a header); a truncated header is dropped. */
  end(): void {
    if (this.pending.length > 0 && (this.raw || !this.sawFrame)) this.emitPending('stdout');
    this.pending = Buffer.alloc(0);
  }

  private emitPending(stream: StreamName): void {
    this.emit(stream, this.pending);
    this.pending = Buffer.alloc(0);
  }

  private emit(stream: StreamName, chunk: Buffer): void {
    if (chunk.length > 0) this.onData(stream, chunk);
  }
}

/**
 * Keeps only the last `limit` bytes written (a helper's output can be large; the end is what explains a failure).
 */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly limit: number) {}

  write(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    // drop whole chunks that lie entirely before the tail
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= this.limit) {
      this.size -= this.chunks.shift()!.length;
      this.truncated = true;
    }
  }

  toString(): string {
    let buf = Buffer.concat(this.chunks);
    if (buf.length > this.limit) {
      buf = buf.subarray(buf.length - this.limit);
      this.truncated = true;
    }
    // a cut may land inside a UTF-8 sequence: skip its continuation bytes
    let start = 0;
    if (this.truncated) while (start < buf.length && start < 4 && (buf[start]! & 0xc0) === 0x80) start++;
    return buf.subarray(start).toString('utf8');
  }
}

export interface Demuxed {
  stdout: string;
  stderr: string;
  /** both streams in arrival order */
  combined: string;
}

/** Demultiplex a whole buffer (pure). */
export function demux(buf: Buffer): Demuxed {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const all: Buffer[] = [];
  const d = new Demuxer((stream, chunk) => {
    (stream === 'stderr' ? err : out).push(chunk);
    all.push(chunk);
  });
  d.push(buf);
  d.end();
  const text = (parts: Buffer[]): string => Buffer.concat(parts).toString('utf8');
  return { stdout: text(out), stderr: text(err), combined: text(all) };
}

/** Split text into lines, without the empty string after a trailing newline. */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** RFC 3339 timestamp with its fraction padded to nanoseconds, so keys of one zone sort as strings. */
function timestampKey(ts: string): string | null {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return null;
  return `${m[1]}.${(m[2] ?? '').padEnd(9, '0')}${m[3]}`;
}

/**
 * Last `tail` lines of service logs fetched with `timestamps: true`, timestamps removed.
 * Docker applies `tail` per task and streams the tasks' logs one after another, so the lines of
 * a service with several tasks must be put in time order before taking the tail.
 */
export function lastLogLines(lines: string[], tail: number): string[] {
  let prevKey = '';
  const keyed = lines.map((line, i) => {
    const sp = line.indexOf(' ');
    const key = sp > 0 ? timestampKey(line.slice(0, sp)) : null;
    // a line without a timestamp stays with the line before it
    if (key !== null) prevKey = key;
    return { key: prevKey, i, text: key !== null ? line.slice(sp + 1) : line };
  });
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i));
  return keyed.slice(Math.max(0, keyed.length - tail)).map((k) => k.text);
}
