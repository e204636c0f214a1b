import { describe, expect, it } from 'vitest';
import { Demuxer, TailBuffer, demux, lastLogLines, splitLines, type StreamName } from '../../src/swarm/demux.js';

/** One multiplexed frame as Docker writes it. */
function frame(stream: 0 | 1 | 2, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

function collect(chunks: Buffer[]): Array<[StreamName, string]> {
  const parts: Array<[StreamName, Buffer]> = [];
  const d = new Demuxer((s, c) => parts.push([s, c]));
  for (const c of chunks) d.push(c);
  d.end();
  // merge consecutive chunks of the same stream, so the split points do not matter
  const merged: Array<[StreamName, Buffer]> = [];
  for (const [s, c] of parts) {
    const last = merged[merged.length - 1];
    if (last && last[0] === s) last[1] = Buffer.concat([last[1], c]);
    else merged.push([s, c]);
  }
  return merged.map(([s, c]) => [s, c.toString('utf8')]);
}

describe('demux', () => {
  it('splits stdout and stderr frames and keeps their order in combined', () => {
    const buf = Buffer.concat([frame(1, 'out-line\n'), frame(2, 'err-line\n'), frame(1, 'more\n')]);
    expect(demux(buf)).toEqual({ stdout: 'out-line\nmore\n', stderr: 'err-line\n', combined: 'out-line\nerr-line\nmore\n' });
  });

  it('returns empty strings for an empty buffer', () => {
    expect(demux(Buffer.alloc(0))).toEqual({ stdout: '', stderr: '', combined: '' });
  });

  it('passes a non-multiplexed (TTY) buffer through as stdout', () => {
    expect(demux(Buffer.from('hello from a tty\nsecond line\n'))).toEqual({
      stdout: 'hello from a tty\nsecond line\n',
      stderr: '',
      combined: 'hello from a tty\nsecond line\n',
    });
  });

  it('passes a TTY buffer shorter than a header through', () => {
    expect(demux(Buffer.from('ok\n')).stdout).toBe('ok\n');
    expect(demux(Buffer.from('\u0001')).stdout).toBe('\u0001');
  });

  it('handles empty frames and treats stdin frames as stdout', () => {
    const buf = Buffer.concat([frame(1, ''), frame(0, 'in'), frame(2, '')]);
    expect(demux(buf)).toEqual({ stdout: 'in', stderr: '', combined: 'in' });
  });

  it('keeps the available part of a truncated last frame and drops a truncated header', () => {
    const full = Buffer.concat([frame(1, 'abc'), frame(2, 'defgh')]);
    expect(demux(full.subarray(0, full.length - 2))).toMatchObject({ stdout: 'abc', stderr: 'def' });
    const cutHeader = Buffer.concat([frame(1, 'abc'), frame(2, 'x').subarray(0, 5)]);
    expect(demux(cutHeader)).toEqual({ stdout: 'abc', stderr: '', combined: 'abc' });
  });

  it('falls back to raw stdout when the stream becomes misaligned', () => {
    const buf = Buffer.concat([frame(1, 'abc'), Buffer.from('garbage')]);
    expect(demux(buf)).toEqual({ stdout: 'abcgarbage', stderr: '', combined: 'abcgarbage' });
  });

  it('decodes multi-byte characters split across frames', () => {
    const euro = Buffer.from('€', 'utf8');
    const buf = Buffer.concat([frame(1, euro.subarray(0, 1)), frame(1, euro.subarray(1))]);
    expect(demux(buf).stdout).toBe('€');
  });

  it('handles large frames', () => {
    const big = 'x'.repeat(200_000);
    expect(demux(Buffer.concat([frame(2, big), frame(1, 'y')]))).toMatchObject({ stderr: big, stdout: 'y' });
  });
});

describe('Demuxer (incremental)', () => {
  const stream = Buffer.concat([frame(1, 'out-line\n'), frame(2, 'err-line\n'), frame(1, 'last')]);

  it('gives the same result for every split point', () => {
    const expected = [
      ['stdout', 'out-line\n'],
      ['stderr', 'err-line\n'],
      ['stdout', 'last'],
    ];
    for (let i = 0; i <= stream.length; i++) {
      expect(collect([stream.subarray(0, i), stream.subarray(i)])).toEqual(expected);
    }
  });

  it('gives the same result byte by byte', () => {
    const bytes = [...stream].map((b) => Buffer.from([b]));
    expect(collect(bytes).map(([s, t]) => `${s}:${t}`)).toEqual(['stdout:out-line\n', 'stderr:err-line\n', 'stdout:last']);
  });

  it('detects a TTY stream that arrives in small chunks', () => {
    expect(collect([Buffer.from('h'), Buffer.from('ello')])).toEqual([['stdout', 'hello']]);
  });
});

describe('TailBuffer', () => {
  it('keeps everything under the limit', () => {
    const t = new TailBuffer(10);
    t.write(Buffer.from('abc'));
    t.write(Buffer.from('def'));
    expect(t.toString()).toBe('abcdef');
    expect(t.truncated).toBe(false);
  });

  it('keeps only the last `limit` bytes', () => {
    const t = new TailBuffer(5);
    for (const s of ['abc', 'def', 'ghi', 'jk']) t.write(Buffer.from(s));
    expect(t.toString()).toBe('ghijk');
    expect(t.truncated).toBe(true);
  });

  it('cuts a single large chunk', () => {
    const t = new TailBuffer(4);
    t.write(Buffer.from('0123456789'));
    expect(t.toString()).toBe('6789');
  });

  it('does not start with a broken UTF-8 sequence', () => {
    const t = new TailBuffer(3);
    t.write(Buffer.from('a€b', 'utf8')); // 61 e2 82 ac 62: the last 3 bytes start inside the €
    expect(t.toString()).toBe('b');
  });
});

describe('splitLines', () => {
  it('drops the empty string after a trailing newline', () => {
    expect(splitLines('a\nb\n')).toEqual(['a', 'b']);
    expect(splitLines('a\r\nb')).toEqual(['a', 'b']);
    expect(splitLines('')).toEqual([]);
    expect(splitLines('\n')).toEqual(['']);
  });
});

describe('lastLogLines', () => {
  it('orders the lines of several tasks by time, then keeps the last ones', () => {
    const lines = [
      // task 2 streamed first, then task 1 (as Docker may do)
      '2026-01-01T10:00:02.500000000Z task2 first',
      '2026-01-01T10:00:03.000000000Z task2 second',
      '2026-01-01T10:00:01.000000000Z task1 first',
      '2026-01-01T10:00:02.100000000Z task1 second',
    ];
    expect(lastLogLines(lines, 10)).toEqual(['task1 first', 'task1 second', 'task2 first', 'task2 second']);
    expect(lastLogLines(lines, 2)).toEqual(['task2 first', 'task2 second']);
    expect(lastLogLines(lines, 0)).toEqual([]);
  });

  it('compares fractions of different lengths as numbers and keeps equal times in arrival order', () => {
    const lines = ['2026-01-01T10:00:00.12Z b', '2026-01-01T10:00:00.1Z a', '2026-01-01T10:00:00.12Z c', '2026-01-01T10:00:00Z first'];
    expect(lastLogLines(lines, 10)).toEqual(['first', 'a', 'b', 'c']);
  });

  it('keeps a line without a timestamp after the line before it', () => {
    expect(lastLogLines(['2026-01-01T10:00:05Z x', 'no stamp', '2026-01-01T10:00:01Z y'], 10)).toEqual(['y', 'x', 'no stamp']);
  });
});
