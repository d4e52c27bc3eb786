import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Side } from '../../../src/engine/types.js';
import { createHttpAnalyzer, type HttpLimits } from '../../../src/protocols/http/index.js';
import { cut, FLOW, RecordingSink, splitOffsets } from './support.js';

type Step = { side: Side; text: string | Buffer } | { side: Side; gap: number };

/**
 * Runs a conversation through a new analyzer. Every chunk is passed in a scratch buffer that is
 * overwritten after the call, so an analyzer that keeps a view instead of a copy fails.
 */
function run(
  steps: Step[],
  limits: Partial<HttpLimits> = {},
  splitAt: number[] = [],
): RecordingSink {
  const sink = new RecordingSink();
  const analyzer = createHttpAnalyzer(FLOW, sink, limits);
  let ts = 1;
  for (const step of steps) {
    if ('gap' in step) {
      analyzer.gap(step.side, step.gap, ts++);
      continue;
    }
    const bytes = typeof step.text === 'string' ? Buffer.from(step.text, 'latin1') : step.text;
    for (const part of cut(
      bytes,
      splitAt.filter((offset) => offset <= bytes.length),
    )) {
      const scratch = Buffer.from(part);
      analyzer.data(step.side, scratch, ts++);
      scratch.fill(0xff);
    }
  }
  analyzer.end(ts);
  return sink;
}

const request = (text: string): Step => ({ side: 0, text: text.replaceAll('\n', '\r\n') });
const response = (text: string): Step => ({ side: 1, text: text.replaceAll('\n', '\r\n') });

describe('HTTP request and response framing', () => {
  const upload: Step[] = [
    request(
      'POST /upload/scan?part=1 HTTP/1.1\nHost: Bucket.S3.amazonaws.com:8080\n' +
        'User-Agent: rclone/\nContent-Type: application/octet-stream\nContent-Length: 10\n\n0123456789',
    ),
    response('HTTP/1.1 200 OK\nContent-Length: 5\n\nhello'),
  ];

  it('reports one exchange with its fields', () => {
    const sink = run(upload);
    expect(sink.ofKind('http-request')).toEqual([
      {
        kind: 'http-request',
        method: 'POST',
        target: '/upload/scan?part=1',
        host: 'Bucket.S3.amazonaws.com:8080',
        userAgent: 'rclone/',
        contentType: 'application/octet-stream',
        contentLength: 10,
        chunked: false,
        requestBodyBytes: 10,
        responseStatus: 200,
        responseBodyBytes: 5,
        incomplete: false,
      },
    ]);
    expect(sink.anomalies).toEqual([]);
  });

  it('reports the request head before the body', () => {
    const sink = new RecordingSink();
    const analyzer = createHttpAnalyzer(FLOW, sink, {});
    const head = 'PUT /b/scan.bin HTTP/1.1\r\nHost: b.s3.amazonaws.com\r\nUser-Agent: rclone/\r\n';
    analyzer.data(0, Buffer.from(`${head}Content-Length: 1000000\r\n\r\n`, 'latin1'), 1);
    analyzer.data(0, Buffer.alloc(1000, 0x41), 2);

    expect(sink.ofKind('http-request')).toEqual([]);
    expect(sink.ofKind('http-request-head')).toEqual([
      {
        kind: 'http-request-head',
        method: 'PUT',
        target: '/b/scan.bin',
        host: 'b.s3.amazonaws.com',
        userAgent: 'rclone/',
        contentLength: 1_000_000,
      },
    ]);
  });

  it('reports the Host without port as remote name', () => {
    const sink = run(upload);
    expect(sink.ofKind('remote-name')).toEqual([
      { kind: 'remote-name', name: 'bucket.s3.amazonaws.com', source: 'http-host' },
    ]);
  });

  it('gives the same result at every split offset', () => {
    const expected = run(upload).observations;
    const longest = Math.max(...upload.map((step) => ('text' in step ? step.text.length : 0)));
    for (const offsets of splitOffsets(longest)) {
      expect(run(upload, {}, offsets).observations).toEqual(expected);
    }
  });

  it('counts pipelined requests in order', () => {
    const sink = run([
      request(
        'GET /a HTTP/1.1\nHost: h\n\nHEAD /b HTTP/1.1\nHost: h\n\nGET /c HTTP/1.1\nHost: h\n\n',
      ),
      response('HTTP/1.1 200 OK\nContent-Length: 3\n\nabc'),
      response('HTTP/1.1 200 OK\nContent-Length: 1000\n\n'),
      response('HTTP/1.1 304 Not Modified\nContent-Length: 99\n\n'),
    ]);
    const exchanges = sink.ofKind('http-request');
    expect(exchanges.map((exchange) => exchange.target)).toEqual(['/a', '/b', '/c']);
    expect(exchanges.map((exchange) => exchange.responseBodyBytes)).toEqual([3, 0, 0]);
    expect(exchanges.map((exchange) => exchange.incomplete)).toEqual([false, false, false]);
  });

  it('counts a chunked body with extensions and trailers', () => {
    const sink = run([
      request(
        'PUT /f HTTP/1.1\nHost: h\nTransfer-Encoding: gzip, chunked\n\n' +
          '5;name=value\nabcde\n' + // chunk of 5 with a chunk extension
          '00A\n0123456789\n' + // chunk of 10, size with leading zero and upper-case hex
          '0\nChecksum: xyz\nX-Other: 1\n\n', // last chunk, two trailer fields
      ),
      response('HTTP/1.1 201 Created\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n'),
    ]);
    const [exchange] = sink.ofKind('http-request');
    expect(exchange?.chunked).toBe(true);
    expect(exchange?.requestBodyBytes).toBe(15);
    expect(exchange?.responseBodyBytes).toBe(3);
    expect(exchange?.incomplete).toBe(false);
    expect(sink.anomalies).toEqual([]);
  });

  it('counts a 4 GB Content-Length without buffering', () => {
    const length = 4 * 1024 ** 3 + 7;
    const block = Buffer.alloc(1 << 20, 0x41);
    const sink = new RecordingSink();
    const big = createHttpAnalyzer(FLOW, sink);
    big.data(
      0,
      Buffer.from(`PUT /big HTTP/1.1\r\nHost: h\r\nContent-Length: ${length}\r\n\r\n`),
      1,
    );
    big.data(0, block, 2);
    // The rest of the body was never seen; a gap inside a counted body keeps framing.
    big.gap(0, length - block.length - 3, 3);
    big.data(0, Buffer.from('xyzGET /next HTTP/1.1\r\n\r\n'), 4);
    big.data(1, Buffer.from('HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'), 5);
    big.data(1, Buffer.from('HTTP/1.1 204 No Content\r\n\r\n'), 6);
    big.end(7);
    const exchanges = sink.ofKind('http-request');
    expect(exchanges[0]?.contentLength).toBe(length);
    expect(exchanges[0]?.requestBodyBytes).toBe(length);
    expect(exchanges[1]?.target).toBe('/next');
    expect(exchanges[1]?.responseStatus).toBe(204);
    expect(sink.anomalies).toEqual([]);
  });

  it('waits for the final response after 100 Continue', () => {
    const sink = run([
      request('PUT /r HTTP/1.1\nHost: h\nExpect: 100-continue\nContent-Length: 4\n\n'),
      response('HTTP/1.1 100 Continue\n\n'),
      request('abcd'),
      response('HTTP/1.1 201 Created\nContent-Length: 2\n\nok'),
    ]);
    const exchanges = sink.ofKind('http-request');
    expect(exchanges).toHaveLength(1);
    expect(exchanges[0]?.responseStatus).toBe(201);
    expect(exchanges[0]?.requestBodyBytes).toBe(4);
    expect(exchanges[0]?.responseBodyBytes).toBe(2);
  });

  it('reads a response without length until close', () => {
    const sink = run([
      request('GET / HTTP/1.0\n\n'),
      response('HTTP/1.0 200 OK\n\n'),
      { side: 1, text: Buffer.alloc(3000) },
    ]);
    const [exchange] = sink.ofKind('http-request');
    expect(exchange?.responseBodyBytes).toBe(3000);
    expect(exchange?.incomplete).toBe(false);
  });

  it('reports unanswered requests as incomplete at end', () => {
    const sink = run([request('POST /a HTTP/1.1\nHost: h\nContent-Length: 100\n\n0123456789')]);
    const [exchange] = sink.ofKind('http-request');
    expect(exchange?.incomplete).toBe(true);
    expect(exchange?.requestBodyBytes).toBe(10);
    expect(exchange?.responseStatus).toBeUndefined();
  });

  it('treats bytes after CONNECT 200 as a tunnel', () => {
    const sink = run([
      request('CONNECT storage.googleapis.com:443 HTTP/1.1\nHost: storage.googleapis.com:443\n\n'),
      response('HTTP/1.1 200 Connection established\n\n'),
      { side: 0, text: Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]) },
      { side: 1, text: 'not HTTP at all\r\n\r\n' },
    ]);
    expect(sink.ofKind('remote-name')).toEqual([
      { kind: 'remote-name', name: 'storage.googleapis.com', source: 'connect' },
    ]);
    const [exchange] = sink.ofKind('http-request');
    expect(exchange?.method).toBe('CONNECT');
    expect(exchange?.responseStatus).toBe(200);
    expect(sink.anomalies).toEqual([]);
  });

  it('reports the first Host only', () => {
    const sink = run([
      request(
        'GET / HTTP/1.1\nHost: [2001:db8::1]:8080\n\nGET / HTTP/1.1\nHost: other.example\n\n',
      ),
    ]);
    expect(sink.ofKind('remote-name')).toEqual([
      { kind: 'remote-name', name: '2001:db8::1', source: 'http-host' },
    ]);
  });

  it('truncates a long User-Agent', () => {
    const sink = run([request(`GET / HTTP/1.1\nUser-Agent: ${'u'.repeat(5000)}\n\n`)], {
      maxUserAgentChars: 100,
    });
    expect(sink.ofKind('http-request')[0]?.userAgent).toBe('u'.repeat(100));
  });
});

describe('HTTP anomalies and limits', () => {
  it('rejects a bad request line', () => {
    const sink = run([request('GET /a HTTP/2.0\n\n'), response('HTTP/1.1 200 OK\n\n')]);
    expect(sink.anomalyNames).toEqual(['http.bad_request_line']);
    expect(sink.ofKind('http-request')).toEqual([]);
  });

  it('rejects a header block over the lowered limit', () => {
    const sink = run([request(`GET / HTTP/1.1\nX-Long: ${'a'.repeat(300)}\n\n`)], {
      maxHeaderBytes: 256,
    });
    expect(sink.anomalies).toEqual([
      { name: 'http.header_too_large', details: { bytes: expect.any(Number), limit: 256 } },
    ]);
  });

  it('accepts the same header block under the default limit', () => {
    const sink = run([request(`GET / HTTP/1.1\nX-Long: ${'a'.repeat(300)}\n\n`)]);
    expect(sink.anomalies).toEqual([]);
  });

  it('rejects a header line split across chunks over the limit', () => {
    const text = `GET / HTTP/1.1\nX-Long: ${'a'.repeat(300)}\n\n`;
    const sink = run([request(text)], { maxHeaderBytes: 256 }, [5, 30, 200]);
    expect(sink.anomalyNames).toEqual(['http.header_too_large']);
  });

  it('rejects pipelining beyond the lowered depth', () => {
    const three = 'GET /1 HTTP/1.1\n\nGET /2 HTTP/1.1\n\nGET /3 HTTP/1.1\n\n';
    expect(run([request(three)], { maxPipelineDepth: 2 }).anomalies).toEqual([
      { name: 'http.pipeline_too_deep', details: { depth: 3, limit: 2 } },
    ]);
    expect(run([request(three)], { maxPipelineDepth: 3 }).anomalies).toEqual([]);
  });

  it('rejects a chunk-size line over the lowered limit', () => {
    const sink = run(
      [
        request(
          `POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n5;${'e'.repeat(100)}\nabcde\n0\n\n`,
        ),
      ],
      { maxChunkLineBytes: 64 },
    );
    expect(sink.anomalyNames).toEqual(['http.chunk_line_too_long']);
  });

  it.each([
    ['no hex digits', 'zz\n'],
    ['too many digits', 'fffffffffffffff\n'],
    ['junk after size', '5x\nabcde\n'],
    ['missing CRLF after data', '3\nabcdef\n'],
  ])('rejects a bad chunk: %s', (_case, body) => {
    const sink = run([request(`POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n${body}`)]);
    expect(sink.anomalyNames).toEqual(['http.bad_chunk']);
  });

  it('rejects conflicting Content-Length values', () => {
    const sink = run([request('POST / HTTP/1.1\nContent-Length: 5\nContent-Length: 6\n\n')]);
    expect(sink.anomalies).toEqual([
      { name: 'http.bad_content_length', details: { first: 5, second: 6 } },
    ]);
  });

  it('rejects a Content-Length beyond 15 digits', () => {
    const sink = run([request('POST / HTTP/1.1\nContent-Length: 1234567890123456\n\n')]);
    expect(sink.anomalyNames).toEqual(['http.bad_content_length']);
  });

  it('prefers chunked over Content-Length', () => {
    const sink = run([
      request('POST / HTTP/1.1\nContent-Length: 100\nTransfer-Encoding: chunked\n\n2\nab\n0\n\n'),
      response('HTTP/1.1 200 OK\nContent-Length: 0\n\n'),
    ]);
    expect(sink.anomalyNames).toEqual(['http.ambiguous_length']);
    expect(sink.ofKind('http-request')[0]?.requestBodyBytes).toBe(2);
  });

  it('rejects a request Transfer-Encoding not ending in chunked', () => {
    const sink = run([request('POST / HTTP/1.1\nTransfer-Encoding: chunked, gzip\n\n')]);
    expect(sink.anomalyNames).toEqual(['http.bad_transfer_encoding']);
  });

  it('rejects whitespace before a header colon', () => {
    const sink = run([request('GET / HTTP/1.1\nHost : h\n\n')]);
    expect(sink.anomalyNames).toEqual(['http.bad_header_line']);
  });

  it('reports a response without a request', () => {
    const sink = run([response('HTTP/1.1 200 OK\n\n')]);
    expect(sink.anomalies).toEqual([
      { name: 'http.unexpected_response', details: { status: 200 } },
    ]);
  });

  it('reports a gap outside a body and resyncs', () => {
    const sink = run([
      request('GET /a HTTP/1.1\n\n'),
      { side: 0, gap: 100 },
      request('GET /b HTTP/1.1\n\n'),
    ]);
    expect(sink.anomalies).toEqual([
      { name: 'http.gap', details: { side: 0, bytes: 100 } },
      { name: 'http.resynced', details: { skipped: 0 } },
    ]);
    expect(sink.ofKind('http-request').map((exchange) => exchange.target)).toEqual(['/a', '/b']);
  });

  it('reports a gap longer than the remaining body', () => {
    const sink = run([request('POST / HTTP/1.1\nContent-Length: 10\n\nabc'), { side: 0, gap: 8 }]);
    expect(sink.anomalyNames).toEqual(['http.gap']);
  });

  it('never throws on arbitrary input in arbitrary chunks', () => {
    const token = fc.constantFrom(
      'GET / HTTP/1.1\r\n',
      'Content-Length: 3\r\n',
      'Transfer-Encoding: chunked\r\n',
      '\r\n',
      '5\r\n',
      'HTTP/1.1 200 OK\r\n',
      '0\r\n',
      'abc',
    );
    const piece = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
      token.map((text) => Buffer.from(text)),
    );
    fc.assert(
      fc.property(
        fc.array(fc.record({ side: fc.constantFrom<Side>(0, 1), piece, gap: fc.nat(50) }), {
          maxLength: 30,
        }),
        (steps) => {
          const sink = new RecordingSink();
          const analyzer = createHttpAnalyzer(FLOW, sink, {
            maxHeaderBytes: 128,
            maxPipelineDepth: 4,
          });
          for (const [index, step] of steps.entries()) {
            if (index % 7 === 6) {
              analyzer.gap(step.side, step.gap, index);
            } else {
              analyzer.data(step.side, step.piece, index);
            }
          }
          analyzer.end(steps.length);
          for (const exchange of sink.ofKind('http-request')) {
            expect(exchange.requestBodyBytes).toBeGreaterThanOrEqual(0);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
