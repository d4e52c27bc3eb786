// Resync of the HTTP analyzer on the next start line after a gap outside a counted body.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Side } from '../../../src/engine/types.js';
import { createHttpAnalyzer, type HttpLimits } from '../../../src/protocols/http/index.js';
import { cut, FLOW, RecordingSink } from './support.js';

type Step = { side: Side; text: string } | { side: Side; gap: number };

/** Runs the steps; `split` gives the cut offsets of each data step by its index. */
function run(
  steps: Step[],
  limits: Partial<HttpLimits> = {},
  split: (index: number, length: number) => number[] = () => [],
): RecordingSink {
  const sink = new RecordingSink();
  const analyzer = createHttpAnalyzer(FLOW, sink, limits);
  steps.forEach((step, index) => {
    if ('gap' in step) {
      analyzer.gap(step.side, step.gap, index);
      return;
    }
    const bytes = Buffer.from(step.text, 'latin1');
    for (const part of cut(bytes, split(index, bytes.length))) {
      // A scratch copy overwritten after the call catches views kept past the call.
      const scratch = Buffer.from(part);
      analyzer.data(step.side, scratch, index);
      scratch.fill(0xff);
    }
  });
  analyzer.end(steps.length);
  return sink;
}

/** Request-side text with LF line ends written as CRLF. */
const request = (text: string): Step => ({ side: 0, text: text.replaceAll('\n', '\r\n') });
const response = (text: string): Step => ({ side: 1, text: text.replaceAll('\n', '\r\n') });

const targets = (sink: RecordingSink) => sink.ofKind('http-request').map((o) => o.target);

describe('HTTP resync after a request-side gap', () => {
  // The gap cuts the second request's body; the bytes after it start mid-line.
  const steps: Step[] = [
    request('GET /a HTTP/1.1\nHost: pacs.example\n\n'),
    request('POST /b HTTP/1.1\nContent-Length: 100\n\n0123456789'),
    response('HTTP/1.1 200 OK\nContent-Length: 2\n\nok'),
    { side: 0, gap: 500 },
    request(
      'tail of a lost line\nPUT /c HTTP/1.1\nHost: bucket.example\nContent-Length: 5\n\nhello',
    ),
    response('HTTP/1.1 413 Too Large\nContent-Length: 0\n\n'),
    response('HTTP/1.1 201 Created\nContent-Length: 0\n\n'),
  ];
  const baseline = run(steps);

  it('parses the next request line', () => {
    expect(baseline.anomalies).toEqual([
      { name: 'http.gap', details: { side: 0, bytes: 500 } },
      { name: 'http.resynced', details: { skipped: 'tail of a lost line\r\n'.length } },
    ]);
    const exchanges = baseline.ofKind('http-request');
    expect(exchanges.map((o) => [o.method, o.target, o.responseStatus])).toEqual([
      ['GET', '/a', 200],
      ['POST', '/b', 413],
      ['PUT', '/c', 201],
    ]);
    const put = exchanges[2];
    expect(put?.host).toBe('bucket.example');
    expect(put?.requestBodyBytes).toBe(5);
    expect(put?.incomplete).toBe(false);
    // The POST body seen before the gap is counted; the lost bytes are not.
    expect(exchanges[1]?.requestBodyBytes).toBe(10);
  });

  it('every split offset gives the same result', () => {
    const index = 4;
    const length = (steps[index] as { text: string }).text.length;
    for (let offset = 0; offset <= length; offset++) {
      const split = run(steps, {}, (at) => (at === index ? [offset] : []));
      expect(split.observations).toEqual(baseline.observations);
      expect(split.anomalies).toEqual(baseline.anomalies);
    }
  });

  it('byte-at-a-time chunks give the same result', () => {
    const bytewise = run(steps, {}, (_at, length) => Array.from({ length }, (_, i) => i));
    expect(bytewise.observations).toEqual(baseline.observations);
    expect(bytewise.anomalies).toEqual(baseline.anomalies);
  });
});

describe('HTTP resync start line checks', () => {
  it('skips a first line cut inside its method', () => {
    // "ET" is a valid token, so only the standard-method rule rejects this line.
    const sink = run([{ side: 0, gap: 10 }, request('ET /cut HTTP/1.1\n\nGET /next HTTP/1.1\n\n')]);
    expect(targets(sink)).toEqual(['/next']);
  });

  it('accepts an extension method after a line start', () => {
    const first = run([{ side: 0, gap: 10 }, request('PROPFIND /dav HTTP/1.1\n\n')]);
    expect(targets(first)).toEqual([]);
    const later = run([{ side: 0, gap: 10 }, request('x\nPROPFIND /dav HTTP/1.1\n\n')]);
    expect(targets(later)).toEqual(['/dav']);
  });

  it('rejects lines that are not request lines', () => {
    const lines = [
      'GET /no-cr HTTP/1.1\n', // bare LF
      'GET  /two-spaces HTTP/1.1\r\n',
      'GET /h2 HTTP/2.0\r\n',
      'GET /lower http/1.1\r\n',
      'G(T /bad-token HTTP/1.1\r\n',
      'GET HTTP/1.1\r\n', // no target
      'HTTP/1.1 200 OK\r\n', // a status line on the request side
    ];
    for (const line of lines) {
      const sink = run([
        { side: 0, gap: 10 },
        { side: 0, text: `x\n${line}\r\n` },
      ]);
      expect(targets(sink), JSON.stringify(line)).toEqual([]);
      expect(sink.anomalyNames, JSON.stringify(line)).toEqual(['http.gap']);
    }
  });

  it('skips a line longer than 8192 bytes', () => {
    // Once the first 8192 bytes are dropped, the rest of this line would pass as a request line.
    const long = `${'a'.repeat(9000)} /trap HTTP/1.1\n`;
    const sink = run([{ side: 0, gap: 10 }, request(`x\n${long}GET /short HTTP/1.1\n\n`)], {}, () =>
      // Chunks of 1000 bytes make the long line straddle chunks.
      Array.from({ length: 10 }, (_, i) => (i + 1) * 1000),
    );
    expect(targets(sink)).toEqual(['/short']);
  });

  it('a gap during the scan restarts the first-line rule', () => {
    const sink = run([
      { side: 0, gap: 10 },
      request('x\n'),
      { side: 0, gap: 10 },
      request('ET /cut HTTP/1.1\n\nPUT /next HTTP/1.1\n\n'),
    ]);
    expect(targets(sink)).toEqual(['/next']);
    expect(sink.anomalyNames).toEqual(['http.gap', 'http.resynced']);
  });
});

describe('HTTP resync limits', () => {
  it('lowered maxResyncBytes stops the scan', () => {
    const filler = 'not a request line\n'.repeat(10);
    const sink = run(
      [{ side: 0, gap: 10 }, request(`${filler}GET /late HTTP/1.1\n\n`)],
      { maxResyncBytes: 100 },
      () => [50, 120],
    );
    expect(sink.anomalies).toEqual([
      { name: 'http.gap', details: { side: 0, bytes: 10 } },
      // Lines are 20 bytes; the check runs per line, so it trips at the end of the sixth.
      { name: 'http.resync_failed', details: { bytes: 120, limit: 100 } },
    ]);
    expect(targets(sink)).toEqual([]);
  });

  it('default maxResyncBytes finds a line after 512 kB', () => {
    const filler = `${'z'.repeat(1023)}\n`.repeat(512);
    const sink = run([{ side: 0, gap: 10 }, request(`${filler}GET /late HTTP/1.1\n\n`)]);
    expect(targets(sink)).toEqual(['/late']);
  });
});

describe('HTTP resync after a response-side gap', () => {
  it('reports waiting requests incomplete and pairs later ones', () => {
    const sink = run([
      request('GET /a HTTP/1.1\n\n'),
      request('GET /b HTTP/1.1\n\n'),
      response('HTTP/1.1 200 OK\nContent-Le'),
      { side: 1, gap: 300 },
      response('ngth: 3\n\nabc\nHTTP/1.1 200 OK\nContent-Length: 4\n\nlost'),
      request('GET /c HTTP/1.1\n\n'),
      response('HTTP/1.1 404 Not Found\nContent-Length: 9\n\nnot found'),
    ]);
    const exchanges = sink.ofKind('http-request');
    expect(exchanges.map((o) => [o.target, o.responseStatus, o.incomplete])).toEqual([
      ['/a', undefined, true],
      ['/b', undefined, true],
      ['/c', 404, false],
    ]);
    // The body of the response whose request was lost is not counted for /c.
    expect(exchanges[2]?.responseBodyBytes).toBe(9);
    expect(sink.anomalies).toEqual([
      { name: 'http.gap', details: { side: 1, bytes: 300 } },
      { name: 'http.resynced', details: { skipped: 'ngth: 3\r\n\r\nabc\r\n'.length } },
    ]);
  });

  it('frames a response whose request was lost', () => {
    const sink = run([
      request('GET /a HTTP/1.1\n\n'),
      response('HTTP/1.1 200 OK\nContent-Length: 2\n\nok'),
      { side: 0, gap: 40 },
      response('HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n4\nlost\n0\n\n'),
      request('x\nGET /b HTTP/1.1\n\n'),
      response('HTTP/1.1 200 OK\nContent-Length: 3\n\nyes'),
    ]);
    const exchanges = sink.ofKind('http-request');
    expect(exchanges.map((o) => [o.target, o.responseStatus, o.responseBodyBytes])).toEqual([
      ['/a', 200, 2],
      ['/b', 200, 3],
    ]);
    expect(sink.anomalyNames).toEqual(['http.gap', 'http.resynced']);
  });

  it('a lost request body is not counted for a later request', () => {
    const sink = run([
      { side: 0, gap: 40 },
      response('HTTP/1.1 200 OK\nContent-Length: 10\n\n12345'),
      request('x\nGET /b HTTP/1.1\n\n'),
      response('67890HTTP/1.1 200 OK\nContent-Length: 3\n\nyes'),
    ]);
    expect(
      sink.ofKind('http-request').map((o) => [o.target, o.responseStatus, o.responseBodyBytes]),
    ).toEqual([['/b', 200, 3]]);
  });

  it('an until-close response of a lost request is not reported', () => {
    const sink = run([
      { side: 0, gap: 40 },
      response('HTTP/1.1 200 OK\n\nbody until close'),
      request('x\nGET /late HTTP/1.1\n\n'),
    ]);
    expect(sink.ofKind('http-request').map((o) => [o.target, o.incomplete])).toEqual([
      ['/late', true],
    ]);
  });
});

describe('HTTP resync robustness', () => {
  it('never throws with gaps at any point', () => {
    const piece = fc.oneof(
      fc.constantFrom(
        'GET / HTTP/1.1\r\n',
        'PROPFIND /x HTTP/1.1\r\n',
        'HTTP/1.1 200 OK\r\n',
        'Content-Length: 3\r\n',
        'Transfer-Encoding: chunked\r\n',
        '\r\n',
        '3\r\nabc\r\n0\r\n',
        'ET / HTTP/1.1\r\n',
      ),
      fc.string({ maxLength: 30 }),
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ side: fc.constantFrom<Side>(0, 1), text: piece }),
            fc.record({ side: fc.constantFrom<Side>(0, 1), gap: fc.nat(100) }),
          ),
          { maxLength: 30 },
        ),
        fc.nat(200),
        (steps, resyncLimit) => {
          const sink = run(steps, { maxResyncBytes: resyncLimit + 1, maxHeaderBytes: 256 });
          for (const exchange of sink.ofKind('http-request')) {
            expect(exchange.requestBodyBytes).toBeGreaterThanOrEqual(0);
            expect(exchange.responseBodyBytes).toBeGreaterThanOrEqual(0);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('random splits after a gap give the same result', () => {
    const text =
      'junk\r\nmore junk\r\nPOST /u HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /v HTTP/1.1\r\n\r\n';
    const steps: Step[] = [
      { side: 0, gap: 7 },
      { side: 0, text },
    ];
    const whole = run(steps);
    expect(targets(whole)).toEqual(['/u', '/v']);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: text.length - 1 })), (cuts) => {
        const sorted = [...cuts].sort((a, b) => a - b);
        const split = run(steps, {}, (index) => (index === 1 ? sorted : []));
        expect(split.observations).toEqual(whole.observations);
        expect(split.anomalies).toEqual(whole.anomalies);
      }),
      { numRuns: 300 },
    );
  });
});
